/**
 * The verifier's per-VM state as plain data: what `exportVm` hands the VMM for a hibernation
 * image or a migration snapshot, and what a `restore-state` request brings back. The VMM
 * carries it without looking inside; the lifecycle plugin (plugins/lifecycle.ts) takes it
 * back only from an image a `vmm` key of the keyring signed for this VM, and checks its shape
 * here, field by field against the section's declared schema, before a single field is used.
 */
import { type Result, err, ok } from '../shared/result.ts';
import { decodeSection, type SectionFormat } from '../shared/state-section.ts';
import { big, bool, count, list, map, obj, oneOf, opt, orUndefined, refine, set, str, strMatching, u32 } from '../shared/state-schema.ts';
import { plain } from '../shared/plain-json.ts';
import type { VerifiedModule, VmState } from './plugin-api.ts';
import type { Keyring } from './keyring.ts';
import { loadManifest } from './manifest.ts';

/** Version of {@link ExportedVmState}. */
export const EXPORTED_VM_STATE_VERSION = 1;

/** A VM's verifier state (the fields of {@link VmState}, and the text of its own manifest). */
export interface ExportedVmState {
  readonly version: number;
  readonly bootVerified: boolean;
  readonly modules: ReadonlyMap<string, VerifiedModule>;
  readonly codeImages: VmState['codeImages'];
  /** Each plugin's private state, as the plugin left it (plain data: shared/plain-json.ts). */
  readonly pluginState: ReadonlyMap<string, unknown>;
  /** The signed manifest text of the kernel the VM runs, when it is not the verifier's own. */
  readonly manifest: string | undefined;
}

const range = refine(obj({ start: big, end: big }), (r) => (r.start <= r.end ? undefined : 'must have start <= end'));
const sha256Hex = strMatching(/^[0-9a-f]{64}$/, 'a SHA-256 (64 lowercase hex digits)');

/** A verified module record (plugin-api.ts VerifiedModule). */
const verifiedModule = obj({
  name: strMatching(/^.+$/s, 'a non-empty string'),
  exports: map(str, big),
  mcountSites: set(big),
  jumpEntries: map(big, obj({ target: big, len: oneOf(2, 5) })),
  textRanges: list(range),
  ranges: list(refine(obj({ start: big, end: big, permissions: u32 }), (r) => (r.start <= r.end ? undefined : 'must have start <= end'))),
  textPageHashes: map(big, sha256Hex),
  functions: opt(set(big)),
  smpLocks: opt(set(big)),
  init: opt(obj({ sections: list(u32), ranges: list(range), roAfterInit: list(u32), roAfterInitRanges: list(range) })),
});

const exportedVmState = obj({
  version: count,
  bootVerified: bool,
  modules: refine(map(str, verifiedModule), (m) => {
    const bad = [...m].find(([k, v]) => k !== v.name);
    return bad ? `holds module ${bad[1].name} under the name ${bad[0]}` : undefined;
  }),
  codeImages: map(big, obj({ end: big, name: str, sha256: sha256Hex, pageHashes: map(big, sha256Hex) })),
  pluginState: map(str, plain),
  manifest: orUndefined(str),
});

/**
 * The `verifier` section of a VM state image: the verifier writes it (exportVmSection) and only
 * the verifier reads it back (plugins/lifecycle.ts); the VMM carries its bytes. Data null: the
 * verifier had no state for the VM.
 */
export const VERIFIER_SECTION: SectionFormat<ExportedVmState | undefined> = {
  name: 'verifier',
  version: EXPORTED_VM_STATE_VERSION,
  schema: orUndefined(exportedVmState),
};

/** Reads a `verifier` section of unknown origin; names the first field that is wrong. */
export function decodeVerifierSection(bytes: Uint8Array): Result<ExportedVmState, string> {
  const d = decodeSection(VERIFIER_SECTION, bytes);
  if (!d.ok) return d;
  if (d.value === undefined) return err('verifier section: the source verifier held no state for the VM');
  if (d.value.version !== EXPORTED_VM_STATE_VERSION) return err(`verifier section: data.version ${d.value.version} is not ${EXPORTED_VM_STATE_VERSION}`);
  return ok(d.value);
}

/**
 * An exported state of unknown origin, checked for taking back: its shape, and the signed
 * manifest it names (against `keyring`'s kernel-vendor keys), loaded. The error names the
 * first problem. Used by a `restore-state` (plugins/lifecycle.ts) and by the VMM's
 * `importVm` of a forked VM (verifier.ts).
 */
export function checkVerifierSection(
  section: unknown,
  keyring: Keyring,
): { ok: true; state: ExportedVmState; kernel: VmState['kernel'] } | { ok: false; part: 'shape' | 'manifest'; error: string } {
  if (!(section instanceof Uint8Array)) return { ok: false, part: 'shape', error: 'verifier section: not bytes' };
  const checked = decodeVerifierSection(section);
  if (!checked.ok) return { ok: false, part: 'shape', error: checked.error };
  if (checked.value.manifest === undefined) return { ok: true, state: checked.value, kernel: undefined };
  const m = loadManifest(checked.value.manifest, keyring);
  if (!m.ok) return { ok: false, part: 'manifest', error: `the VM's kernel manifest: ${m.error}` };
  return { ok: true, state: checked.value, kernel: { manifest: m.value, text: checked.value.manifest } };
}

/**
 * Replaces `target`'s contents with `state` (the plugin's commit, after the image checked).
 * `kernel` is the already checked manifest of `state.manifest`, when it has one.
 */
export function applyExportedVmState(target: VmState, state: ExportedVmState, kernel: VmState['kernel']): void {
  target.modules.clear();
  for (const [k, m] of state.modules) target.modules.set(k, m);
  target.codeImages.clear();
  for (const [k, c] of state.codeImages) target.codeImages.set(k, c);
  target.pluginState.clear();
  for (const [k, p] of state.pluginState) target.pluginState.set(k, p);
  target.bootVerified = state.bootVerified;
  target.kernel = kernel;
}
