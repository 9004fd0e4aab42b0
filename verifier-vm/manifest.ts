/**
 * The signed kernel manifest: what the verifier knows about the kernel the guest booted,
 * built on the host from the real image (`heki manifest`, tools/manifest-builder.ts)
 * and signed by the kernel vendor's Ed25519 key. The VMM hands it to the verifier at VM
 * start; the verifier checks the signature against a `kernel-vendor` key of its keyring
 * before it uses anything in it.
 *
 * File format (JSON):
 * ```json
 * {"type":"heki-kernel-manifest","version":1,"keyId":"<16 hex>","signature":"<base64>","body":"<JSON text>"}
 * ```
 * The Ed25519 signature covers the domain string {@link MANIFEST_SIGNATURE_DOMAIN} followed by
 * the SHA-256 of the UTF-8 bytes of `body`, the exact string, so no re-serialisation can
 * change what was signed. `body` parses to {@link ManifestBody}; addresses are hex strings.
 */
import { createHash } from 'node:crypto';
import { type Result, err, ok } from '../shared/result.ts';
import type { Keyring } from './keyring.ts';
import { verifyEd25519 } from '../shared/crypto/ed25519.ts';

/** Domain separation for manifest signatures. */
export const MANIFEST_SIGNATURE_DOMAIN = 'heki-sim kernel manifest v1\0';
/** `type` field of a manifest file. */
export const MANIFEST_FILE_TYPE = 'heki-kernel-manifest';
/** Current manifest version. */
export const MANIFEST_VERSION = 1;

/** A hashed range of the kernel image. */
export interface ManifestSection {
  readonly name: string;
  /** Kernel virtual address, hex. */
  readonly vaddr: string;
  /** Physical load address, hex. */
  readonly paddr: string;
  readonly size: number;
  /**
   * SHA-256 (hex) of the section's bytes as they must be in memory at the end of boot: for
   * text, with every `__mcount_loc` site normalised to the 5-byte NOP, as ftrace leaves it.
   */
  readonly sha256: string;
}

/** One `__jump_table` entry. */
export interface ManifestJumpEntry {
  /** Site address, hex. */
  readonly site: string;
  /** Jump target, hex. */
  readonly target: string;
  /** Key address, hex (flags stripped). */
  readonly key: string;
  /** Site length: 2 or 5. */
  readonly len: 2 | 5;
  /** The entry's branch bit (bit 0 of its key field): it jumps when its key's state differs (absent in older manifests). */
  readonly branch?: boolean;
}

/** One `.static_call_sites` entry. */
export interface ManifestStaticCallSite {
  /** Site address, hex. */
  readonly site: string;
  /** Key (`__SCK__<name>`) address, hex (flags stripped). */
  readonly key: string;
  /** A tail call (`jmp`), from the entry's STATIC_CALL_SITE_TAIL flag. */
  readonly tail: boolean;
}

/** One static call key. */
export interface ManifestStaticCallKey {
  /** `__SCK__<name>` address, hex. */
  readonly key: string;
  /** `__SCT__<name>` address, hex. */
  readonly trampoline: string;
  /** The static call's name (without the prefix). */
  readonly name: string;
}

/** What the verifier knows about the kernel's static calls. */
export interface ManifestStaticCalls {
  /** Every `.static_call_sites` entry. */
  readonly sites: readonly ManifestStaticCallSite[];
  /** Every `__SCK__` key with its trampoline. */
  readonly keys: readonly ManifestStaticCallKey[];
  /** Base of {@link functions}, hex (`_stext`). */
  readonly functionBase: string;
  /**
   * The kernel's function entry points, the allowed static-call targets: the distinct
   * addresses of System.map's text symbols in [_stext, _etext), as hex offsets from
   * {@link functionBase}, sorted (offsets keep the body about half the size of full addresses).
   */
  readonly functions: readonly string[];
  /** `__static_call_return0`, hex, when the kernel has it. */
  readonly return0?: string;
  /** `__x86_return_thunk`, hex, when the kernel has it (CONFIG_RETHUNK). */
  readonly returnThunk?: string;
}

/**
 * What the verifier needs to predict the kernel's boot-time text touch-ups
 * (shared/x86/touchups/) for any CPU model: the file's tables and the file's bytes where the
 * touch-ups write, with a digest of every page of the file's `.text`, so that the guest's
 * text plus these bytes rebuild the file image exactly (or a page digest names where not).
 */
export interface ManifestTouchups {
  /** Size of the pages {@link pageSha256} covers (4096). */
  readonly pageSize: number;
  /** SHA-256 of each `pageSize` page of the file's `.text` (the last one shorter), concatenated, base64. */
  readonly pageSha256: string;
  /** The file's `.text` bytes at every touch-up span (shared/x86/touchups/spans.ts), concatenated, base64. */
  readonly siteBytes: string;
  /** Table sections as in the file (`.parainstructions`, `.retpoline_sites`, `.return_sites`, `.altinstructions`, `.smp_locks`, `.altinstr_replacement`): vaddr hex, data base64. */
  readonly sections: Readonly<Record<string, { readonly vaddr: string; readonly data: string }>>;
  /** The symbols the passes need (source.ts TOUCHUP_SYMBOLS that the kernel has): name -> hex. */
  readonly symbols: Readonly<Record<string, string>>;
  /** `pv_ops[type]` as the file initialises it, for every type a paravirt site uses: type -> hex (`0` for NULL). */
  readonly pvOps: Readonly<Record<string, string>>;
  /** Every static call key's initial function: `__SCK__` address hex -> function hex (`0` for NULL). */
  readonly staticCallFuncs: Readonly<Record<string, string>>;
}

/** What the manifest's body holds. */
export interface ManifestBody {
  /** `linux-6.1.0-56-amd64`-style release name. */
  readonly kernel: string;
  /** SHA-256 of the vmlinuz the manifest was built from, hex. */
  readonly vmlinuzSha256: string;
  /** Sections the verifier checks at the end of boot (.text, .rodata, ...). */
  readonly sections: readonly ManifestSection[];
  /** Well-known boundaries: _stext, _etext, __start_rodata, ..., hex. */
  readonly symbols: Readonly<Record<string, string>>;
  /** Every `__mcount_loc` site, hex, sorted. */
  readonly mcountSites: readonly string[];
  /** Every `__jump_table` entry. */
  readonly jumpEntries: readonly ManifestJumpEntry[];
  /** Symbols modules may link against: name -> address, hex (the `__ksymtab` exports). */
  readonly exports: Readonly<Record<string, string>>;
  /** Allowed ftrace call targets: name -> address, hex (ftrace_caller, ftrace_regs_caller, ...). */
  readonly ftraceTrampolines: Readonly<Record<string, string>>;
  /** Address of __fentry__, hex. */
  readonly fentry: string;
  /** Static call sites, keys and allowed targets (absent in manifests made before static calls). */
  readonly staticCalls?: ManifestStaticCalls;
  /**
   * The boot touch-up tables and file bytes (absent in manifests made before them: the
   * verifier then checks `.text` against its section digest, the file with only ftrace's NOPs).
   */
  readonly touchups?: ManifestTouchups;
  /**
   * The `lock` prefixes `.smp_locks` lists within `_stext`.._etext, hex, sorted: where
   * alternatives_smp_lock()/unlock() may switch `f0` and `3e` (shared/x86/smp-locks.ts).
   * Absent in manifests made before CPU hotplug: no lock-prefix patch is allowed then.
   */
  readonly smpLocks?: readonly string[];
}

/** A static call key as the plugins look it up. */
export interface StaticCallKeyInfo {
  readonly key: bigint;
  readonly name: string;
  readonly trampoline: bigint;
  /** Its sites, in manifest order. */
  readonly sites: readonly bigint[];
}

/** The static-call lookups (empty for a manifest without `staticCalls`). */
export interface StaticCallIndex {
  /** Sites by address. */
  readonly sites: ReadonlyMap<bigint, { readonly key: bigint; readonly tail: boolean }>;
  /** Keys by `__SCK__` address. */
  readonly keys: ReadonlyMap<bigint, StaticCallKeyInfo>;
  /** Trampoline address -> key address. */
  readonly trampolines: ReadonlyMap<bigint, bigint>;
  /** Kernel function entry points, sorted ascending. */
  readonly functions: readonly bigint[];
  /** The same, as a set. */
  readonly functionSet: ReadonlySet<bigint>;
  readonly return0: bigint | undefined;
  readonly returnThunk: bigint | undefined;
}

/** A manifest whose signature was checked, with lookup structures built once. */
export interface KernelManifest {
  readonly body: ManifestBody;
  /** Key that signed it. */
  readonly keyId: string;
  readonly mcountSites: ReadonlySet<bigint>;
  /** Jump entries by site address. */
  readonly jumpEntries: ReadonlyMap<bigint, { target: bigint; key: bigint; len: 2 | 5; branch: boolean | undefined }>;
  readonly exports: ReadonlyMap<string, bigint>;
  /** Allowed ftrace targets by address, with their names. */
  readonly ftraceTrampolines: ReadonlyMap<bigint, string>;
  readonly fentry: bigint;
  /** Text ranges [start, end) of the kernel, for site checks. */
  readonly textRanges: ReadonlyArray<{ name: string; start: bigint; end: bigint }>;
  /** Static call sites, keys, trampolines and function entry points. */
  readonly staticCalls: StaticCallIndex;
  /** The kernel's `.smp_locks` lock-prefix addresses (empty for a manifest without them). */
  readonly smpLocks: ReadonlySet<bigint>;
}

/** The manifest message the signature covers. */
export function manifestSignatureMessage(body: string): Uint8Array {
  const digest = createHash('sha256').update(body, 'utf8').digest();
  const domain = new TextEncoder().encode(MANIFEST_SIGNATURE_DOMAIN);
  const msg = new Uint8Array(domain.length + digest.length);
  msg.set(domain, 0);
  msg.set(digest, domain.length);
  return msg;
}

const HEX = /^[0-9a-f]+$/;

function big(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !HEX.test(v) || v.length > 16) throw new TypeError(`${what} must be a hex string of at most 16 digits`);
  return BigInt(`0x${v}`);
}

/**
 * Parses a manifest file and checks its signature against the keyring's `kernel-vendor`
 * keys. Every problem is named; nothing throws.
 */
export function loadManifest(fileText: string, keyring: Keyring): Result<KernelManifest, string> {
  let file: unknown;
  try {
    file = JSON.parse(fileText);
  } catch (e) {
    return err(`manifest is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof file !== 'object' || file === null) return err('manifest must be a JSON object');
  const f = file as Record<string, unknown>;
  if (f.type !== MANIFEST_FILE_TYPE) return err(`manifest type must be "${MANIFEST_FILE_TYPE}"`);
  if (f.version !== MANIFEST_VERSION) return err(`manifest version ${String(f.version)} is not ${MANIFEST_VERSION}`);
  if (typeof f.body !== 'string') return err('manifest body must be a string');
  if (typeof f.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(f.keyId)) return err('manifest keyId must be 16 hex digits');
  if (typeof f.signature !== 'string') return err('manifest signature must be base64');
  const sig = Buffer.from(f.signature, 'base64');
  if (sig.length !== 64) return err(`manifest signature must be 64 bytes, got ${sig.length}`);
  const key = keyring.ed25519Key(f.keyId);
  if (!key) return err(`manifest signed by unknown key ${f.keyId}`);
  if (key.role !== 'kernel-vendor') return err(`manifest key ${f.keyId} has role ${key.role}, not kernel-vendor`);
  if (keyring.isKeyRevoked(f.keyId)) return err(`manifest key ${f.keyId} is revoked`);
  if (!verifyEd25519(manifestSignatureMessage(f.body), new Uint8Array(sig), key.publicKey)) {
    return err('manifest signature does not match its body');
  }
  let body: ManifestBody;
  try {
    body = JSON.parse(f.body) as ManifestBody;
    return ok(indexManifest(body, f.keyId));
  } catch (e) {
    return err(`manifest body is malformed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Builds the lookup structures; throws TypeError on a malformed body (caught by loadManifest). */
export function indexManifest(body: ManifestBody, keyId: string): KernelManifest {
  if (!Array.isArray(body.sections) || !Array.isArray(body.mcountSites) || !Array.isArray(body.jumpEntries)) {
    throw new TypeError('sections, mcountSites and jumpEntries must be arrays');
  }
  if (typeof body.exports !== 'object' || typeof body.ftraceTrampolines !== 'object') throw new TypeError('exports and ftraceTrampolines must be objects');
  const mcountSites = new Set<bigint>(body.mcountSites.map((s, i) => big(s, `mcountSites[${i}]`)));
  const jumpEntries = new Map<bigint, { target: bigint; key: bigint; len: 2 | 5; branch: boolean | undefined }>();
  body.jumpEntries.forEach((e, i) => {
    if (e.len !== 2 && e.len !== 5) throw new TypeError(`jumpEntries[${i}].len must be 2 or 5`);
    if (e.branch !== undefined && typeof e.branch !== 'boolean') throw new TypeError(`jumpEntries[${i}].branch must be a boolean`);
    jumpEntries.set(big(e.site, `jumpEntries[${i}].site`), { target: big(e.target, 'target'), key: big(e.key, 'key'), len: e.len, branch: e.branch });
  });
  const exports = new Map<string, bigint>(Object.entries(body.exports).map(([n, a]) => [n, big(a, `exports.${n}`)]));
  const ftraceTrampolines = new Map<bigint, string>(Object.entries(body.ftraceTrampolines).map(([n, a]) => [big(a, `ftraceTrampolines.${n}`), n]));
  const textRanges = body.sections
    .filter((s) => s.name === '.text' || s.name.startsWith('.text.') || s.name === '.init.text')
    .map((s) => ({ name: s.name, start: big(s.vaddr, `${s.name}.vaddr`), end: big(s.vaddr, 'vaddr') + BigInt(s.size) }));
  // The init region [__init_begin, __init_end) holds .init.text; it is freed at the end of
  // boot, and the plugins refuse to patch it afterwards (ftrace_free_init_mem).
  const ib = body.symbols['__init_begin'];
  const ie = body.symbols['__init_end'];
  if (ib !== undefined && ie !== undefined && !textRanges.some((r) => r.name === '.init.text')) {
    textRanges.push({ name: '.init.text', start: big(ib, '__init_begin'), end: big(ie, '__init_end') });
  }
  const staticCalls = indexStaticCalls(body.staticCalls);
  if (body.smpLocks !== undefined && !Array.isArray(body.smpLocks)) throw new TypeError('smpLocks must be an array');
  const smpLocks = new Set<bigint>((body.smpLocks ?? []).map((s, i) => big(s, `smpLocks[${i}]`)));
  return { body, keyId, mcountSites, jumpEntries, exports, ftraceTrampolines, fentry: big(body.fentry, 'fentry'), textRanges, staticCalls, smpLocks };
}

/** Indexes `staticCalls` (undefined: empty); throws TypeError on a malformed one. */
function indexStaticCalls(sc: ManifestStaticCalls | undefined): StaticCallIndex {
  if (sc === undefined) {
    return { sites: new Map(), keys: new Map(), trampolines: new Map(), functions: [], functionSet: new Set(), return0: undefined, returnThunk: undefined };
  }
  if (typeof sc !== 'object' || sc === null || !Array.isArray(sc.sites) || !Array.isArray(sc.keys) || !Array.isArray(sc.functions)) {
    throw new TypeError('staticCalls must be an object with sites, keys and functions arrays');
  }
  const keys = new Map<bigint, { key: bigint; name: string; trampoline: bigint; sites: bigint[] }>();
  const trampolines = new Map<bigint, bigint>();
  sc.keys.forEach((k, i) => {
    if (typeof k.name !== 'string' || k.name === '') throw new TypeError(`staticCalls.keys[${i}].name must be a non-empty string`);
    const key = big(k.key, `staticCalls.keys[${i}].key`);
    const trampoline = big(k.trampoline, `staticCalls.keys[${i}].trampoline`);
    if (keys.has(key)) throw new TypeError(`staticCalls.keys[${i}]: key ${k.key} is listed twice`);
    if (trampolines.has(trampoline)) throw new TypeError(`staticCalls.keys[${i}]: trampoline ${k.trampoline} is listed twice`);
    keys.set(key, { key, name: k.name, trampoline, sites: [] });
    trampolines.set(trampoline, key);
  });
  const sites = new Map<bigint, { key: bigint; tail: boolean }>();
  sc.sites.forEach((s, i) => {
    if (typeof s.tail !== 'boolean') throw new TypeError(`staticCalls.sites[${i}].tail must be a boolean`);
    const site = big(s.site, `staticCalls.sites[${i}].site`);
    const key = big(s.key, `staticCalls.sites[${i}].key`);
    const k = keys.get(key);
    if (!k) throw new TypeError(`staticCalls.sites[${i}]: key ${s.key} is not in staticCalls.keys`);
    if (sites.has(site)) throw new TypeError(`staticCalls.sites[${i}]: site ${s.site} is listed twice`);
    sites.set(site, { key, tail: s.tail });
    k.sites.push(site);
  });
  const base = big(sc.functionBase, 'staticCalls.functionBase');
  const functions = sc.functions.map((o, i) => base + big(o, `staticCalls.functions[${i}]`));
  functions.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const opt = (v: string | undefined, what: string): bigint | undefined => (v === undefined ? undefined : big(v, what));
  return {
    sites,
    keys,
    trampolines,
    functions,
    functionSet: new Set(functions),
    return0: opt(sc.return0, 'staticCalls.return0'),
    returnThunk: opt(sc.returnThunk, 'staticCalls.returnThunk'),
  };
}
