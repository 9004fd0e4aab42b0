/**
 * Building and signing the kernel manifest on the host (`heki manifest`): what the verifier
 * will know about the kernel the guest boots, read from the real image (vmlinuz + System.map,
 * shared/kernel-image/) and signed with the kernel vendor's Ed25519 key.
 *
 * The manifest holds:
 * - `.text` and `.rodata` with their addresses, sizes and SHA-256. `.text` is hashed as it
 *   must be in memory once ftrace initialised at boot: every `__mcount_loc` site in it turned
 *   from `call __fentry__` into the 5-byte NOP (ftrace_init -> ftrace_process_locs). `.rodata`
 *   is hashed as in the file.
 * - the linker boundaries (`_stext`, `__start_rodata`, ..., `__fentry__`);
 * - every ftrace site, every jump-label entry (key flags stripped), every export;
 * - the allowed ftrace call targets: `ftrace_caller`, `ftrace_regs_caller` and `ftrace_stub`
 *   when System.map has it (arch/x86/kernel/ftrace_64.S);
 * - `__fentry__`, which module ftrace sites must call before they are NOPed;
 * - the static calls: every `.static_call_sites` entry (site, key, tail flag), every
 *   `__SCK__` key with its `__SCT__` trampoline, and the kernel's function entry points (the
 *   text symbols of System.map in [_stext, _etext)), which are the targets a static call may
 *   be pointed at, plus `__static_call_return0` and `__x86_return_thunk` when present.
 *
 * See verifier-vm/manifest.ts for the file format and how the verifier checks it.
 */
import { createHash } from 'node:crypto';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import { BOUNDARY_SYMBOLS } from '../shared/kernel-image/kernel-layout.ts';
import { textFunctionEntries } from '../shared/kernel-image/static-calls.ts';
import { vmlinuxTouchupSource } from '../shared/kernel-image/touchup-tables.ts';
import { TOUCHUP_SECTIONS, TOUCHUP_SYMBOLS, touchupTables } from '../shared/x86/touchups/source.ts';
import { gatherSpans, touchupSpans } from '../shared/x86/touchups/spans.ts';
import { err, ok, type Result } from '../shared/result.ts';
import { kernelSmpLocks } from '../shared/x86/smp-locks.ts';
import {
  MANIFEST_FILE_TYPE,
  MANIFEST_VERSION,
  manifestSignatureMessage,
  type ManifestBody,
  type ManifestJumpEntry,
  type ManifestSection,
  type ManifestStaticCalls,
  type ManifestTouchups,
} from '../verifier-vm/manifest.ts';
import { ed25519KeyIdHex, signEd25519, type Ed25519KeyPair } from '../shared/crypto/ed25519.ts';

/** The sections the manifest hashes, in this order. */
export const MANIFEST_SECTIONS: readonly string[] = Object.freeze(['.text', '.rodata']);
/** ftrace trampolines a site may call: required ones first, then optional ones. */
export const REQUIRED_FTRACE_TRAMPOLINES: readonly string[] = Object.freeze(['ftrace_caller', 'ftrace_regs_caller']);
/** Optional trampolines, listed when System.map has them. */
export const OPTIONAL_FTRACE_TRAMPOLINES: readonly string[] = Object.freeze(['ftrace_stub']);

const NOP5 = [0x0f, 0x1f, 0x44, 0x00, 0x00] as const;

/** What the caller knows about the image besides its contents. */
export interface ManifestInfo {
  /** Release name, e.g. `linux-6.1.0-56-amd64`. */
  readonly kernel: string;
  /** SHA-256 of the vmlinuz file, hex. */
  readonly vmlinuzSha256: string;
}

/** A manifest that cannot be built from this image; names what is missing. */
export class ManifestBuildError extends Error {
  override readonly name = 'ManifestBuildError';
}

/** An address as the manifest writes it: lowercase hex, no prefix. */
export function manifestHex(v: bigint): string {
  return v.toString(16);
}

/**
 * The bytes `.text` must hold after ftrace's boot-time conversion: a copy of the file bytes
 * with every mcount site inside it set to the 5-byte NOP.
 */
export function normalisedText(image: KernelImage): Uint8Array {
  const text = image.sectionByName('.text');
  if (!text) throw new ManifestBuildError('vmlinux has no .text section');
  const out = Uint8Array.from(text.bytes);
  const end = text.vaddr + BigInt(text.size);
  for (const site of image.mcountSites) {
    if (site.address < text.vaddr || site.address + 5n > end) continue;
    out.set(NOP5, Number(site.address - text.vaddr));
  }
  return out;
}

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The manifest's `staticCalls`: sites, keys with trampolines, and the allowed targets. */
export function manifestStaticCalls(image: KernelImage): ManifestStaticCalls {
  const { _stext, _etext } = image.boundaries;
  const return0 = image.systemMap.address('__static_call_return0');
  const returnThunk = image.systemMap.address('__x86_return_thunk');
  return {
    sites: image.staticCalls.sites.map((s) => ({ site: manifestHex(s.site), key: manifestHex(s.key), tail: s.tail })),
    keys: image.staticCalls.keys.map((k) => ({ key: manifestHex(k.key), trampoline: manifestHex(k.trampoline), name: k.name })),
    functionBase: manifestHex(_stext),
    functions: textFunctionEntries(image.systemMap, _stext, _etext).map((a) => manifestHex(a - _stext)),
    ...(return0 !== undefined ? { return0: manifestHex(return0) } : {}),
    ...(returnThunk !== undefined ? { returnThunk: manifestHex(returnThunk) } : {}),
  };
}

/** Page size of the manifest's `.text` page digests. */
export const TOUCHUP_PAGE_SIZE = 4096;

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/**
 * The manifest's `touchups`: the file's touch-up tables, its `.text` bytes at every span the
 * touch-ups write, a SHA-256 per page of the file's `.text`, the symbols, `pv_ops` values and
 * static call functions the passes use (verifier-vm/end-state/kernel-text-prediction.ts).
 */
export function manifestTouchups(image: KernelImage): ManifestTouchups {
  const text = image.sectionByName('.text');
  if (!text) throw new ManifestBuildError('vmlinux has no .text section');
  const src = vmlinuxTouchupSource(image);
  const tables = touchupTables(src);
  const spans = touchupSpans(
    tables,
    { mcountSites: image.mcountSites.map((s) => s.address), trampolines: image.staticCalls.keys.map((k) => k.trampoline) },
    text.vaddr,
    text.size,
  );
  const digests = new Uint8Array(Math.ceil(text.size / TOUCHUP_PAGE_SIZE) * 32);
  for (let p = 0, i = 0; p < text.size; p += TOUCHUP_PAGE_SIZE, i++)
    digests.set(
      createHash('sha256')
        .update(text.bytes.subarray(p, Math.min(text.size, p + TOUCHUP_PAGE_SIZE)))
        .digest(),
      i * 32,
    );
  const sections: Record<string, { vaddr: string; data: string }> = {};
  for (const name of [...TOUCHUP_SECTIONS, '.altinstr_replacement']) {
    const s = image.sectionByName(name);
    if (s) sections[name] = { vaddr: manifestHex(s.vaddr), data: b64(s.bytes) };
  }
  const symbols: Record<string, string> = {};
  for (const name of TOUCHUP_SYMBOLS) {
    const a = src.symbol(name);
    if (a !== undefined) symbols[name] = manifestHex(a);
  }
  const pvOps: Record<string, string> = {};
  for (const p of tables.paravirt) {
    const op = src.pvOp(p.type);
    if (op !== undefined) pvOps[String(p.type)] = manifestHex(op);
  }
  const staticCallFuncs: Record<string, string> = {};
  for (const k of src.staticCallKeys) staticCallFuncs[manifestHex(k.key)] = manifestHex(k.func ?? 0n);
  return { pageSize: TOUCHUP_PAGE_SIZE, pageSha256: b64(digests), siteBytes: b64(gatherSpans(text.bytes, spans)), sections, symbols, pvOps, staticCallFuncs };
}

/**
 * Builds the manifest body from a loaded kernel image. Throws {@link ManifestBuildError}
 * naming what is missing when the image lacks a manifest section or a required trampoline
 * (a loaded KernelImage has already been cross-checked; this is not attacker input).
 */
export function buildManifestBody(image: KernelImage, info: ManifestInfo): ManifestBody {
  const sections: ManifestSection[] = MANIFEST_SECTIONS.map((name) => {
    const s = image.sectionByName(name);
    if (!s) throw new ManifestBuildError(`vmlinux has no ${name} section`);
    if (s.paddr === undefined) throw new ManifestBuildError(`${name} is outside every PT_LOAD segment: no physical address`);
    const bytes = name === '.text' ? normalisedText(image) : s.bytes;
    return { name, vaddr: manifestHex(s.vaddr), paddr: manifestHex(s.paddr), size: s.size, sha256: sha256Hex(bytes) };
  });
  const symbols: Record<string, string> = {};
  for (const name of BOUNDARY_SYMBOLS) symbols[name] = manifestHex(image.boundaries[name]);
  const mcountSites = [...image.mcountSites]
    .map((s) => s.address)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map(manifestHex);
  const jumpEntries: ManifestJumpEntry[] = image.jumpEntries.map((e) => ({
    site: manifestHex(e.site),
    target: manifestHex(e.target),
    key: manifestHex(e.key),
    len: e.length,
    branch: (e.flags & 1) === 1,
  }));
  const exports: Record<string, string> = {};
  for (const [name, addr] of image.exports) exports[name] = manifestHex(addr);
  const ftraceTrampolines: Record<string, string> = {};
  for (const name of [...REQUIRED_FTRACE_TRAMPOLINES, ...OPTIONAL_FTRACE_TRAMPOLINES]) {
    const a = image.systemMap.address(name);
    if (a === undefined) {
      if (REQUIRED_FTRACE_TRAMPOLINES.includes(name)) throw new ManifestBuildError(`System.map has no ${name}: the kernel was not built with dynamic ftrace`);
      continue;
    }
    ftraceTrampolines[name] = manifestHex(a);
  }
  return {
    kernel: info.kernel,
    vmlinuzSha256: info.vmlinuzSha256,
    sections,
    symbols,
    mcountSites,
    jumpEntries,
    exports,
    ftraceTrampolines,
    fentry: manifestHex(image.boundaries.__fentry__),
    staticCalls: manifestStaticCalls(image),
    touchups: manifestTouchups(image),
    smpLocks: kernelSmpLocks(image).map(manifestHex),
  };
}

/**
 * The signed manifest file (verifier-vm/manifest.ts format): `body` is `JSON.stringify(body)`
 * and the Ed25519 signature covers {@link manifestSignatureMessage} of exactly that string.
 */
export function signManifest(body: ManifestBody, keyPair: Ed25519KeyPair): string {
  const text = JSON.stringify(body);
  const signature = signEd25519(manifestSignatureMessage(text), keyPair.secretKey);
  const file = {
    type: MANIFEST_FILE_TYPE,
    version: MANIFEST_VERSION,
    keyId: ed25519KeyIdHex(keyPair.publicKey),
    signature: Buffer.from(signature).toString('base64'),
    body: text,
  };
  return `${JSON.stringify(file)}\n`;
}

/**
 * The kernel release in a bzImage's setup header (`kernel_version` at 0x20e points, minus
 * 0x200, at a NUL-terminated string such as `6.1.0-56-amd64 (debian-kernel@...) #1 SMP ...`;
 * Documentation/x86/boot.rst), as `linux-<first word>`; an error names what is wrong.
 */
export function bzImageKernelName(vmlinuz: Uint8Array): Result<string, string> {
  if (vmlinuz.length < 0x264) return err('file is too short for a bzImage setup header');
  const dv = new DataView(vmlinuz.buffer, vmlinuz.byteOffset, vmlinuz.byteLength);
  if (dv.getUint32(0x202, true) !== 0x53726448) return err('no "HdrS" setup-header magic: not a bzImage');
  const ptr = dv.getUint16(0x20e, true);
  if (ptr === 0) return err('the setup header has no kernel_version string');
  const at = ptr + 0x200;
  if (at >= vmlinuz.length) return err(`kernel_version offset ${at} is past the end of the file`);
  const end = vmlinuz.indexOf(0, at);
  const text = new TextDecoder().decode(vmlinuz.subarray(at, end < 0 ? Math.min(vmlinuz.length, at + 256) : Math.min(end, at + 256)));
  const release = text.split(' ')[0] ?? '';
  if (!/^[0-9][\w.+-]*$/.test(release)) return err(`kernel_version ${JSON.stringify(text.slice(0, 40))} does not start with a release`);
  return ok(`linux-${release}`);
}
