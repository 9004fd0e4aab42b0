/**
 * The verifier protocol: the messages between the core (hypervisor/verifier-link) and the
 * isolated verifier VM (verifier-vm/worker.ts), on their own like comlink's protocol.ts.
 *
 * TRUST: a request carries copies of guest bytes that the core snapshotted after freezing
 * the pages; it never carries object references. The worker validates the shape of every
 * request with {@link validateRequest} and answers a malformed one with a denial naming the
 * problem; the core validates every verdict with {@link validateVerdict} and treats a
 * malformed one as "verifier unavailable" (fail closed).
 *
 * Values are structured-clone data: numbers, strings, booleans, bigint addresses,
 * Uint8Array bytes, arrays and plain objects.
 */

/** Version of this protocol; a message of another version is refused. */
export const PROTOCOL_VERSION = 1;

/** One placed section of a module, as the core found it in guest memory. */
export interface PlacedSection {
  /** Section index in the module's ELF. */
  readonly shndx: number;
  /** Guest-virtual address the guest loaded it at. */
  readonly addr: bigint;
  /** Bytes of the section in memory (snapshot after freezing); empty for SHT_NOBITS. */
  readonly bytes: Uint8Array;
  /** Size in memory (equals bytes.length except for NOBITS). */
  readonly size: number;
}

/** One text patch: replace `oldBytes` at `site` with `newBytes`. */
export interface PatchItem {
  /** What kind of patch the guest says this is. */
  readonly kind: 'ftrace' | 'jump-label' | 'static-call' | 'kprobe' | 'smp-lock';
  /** Kernel virtual address of the first byte. */
  readonly site: bigint;
  /** What the guest believes is there now. */
  readonly oldBytes: Uint8Array;
  /** What it wants there. */
  readonly newBytes: Uint8Array;
  /** What is actually there (the core's snapshot), same length as oldBytes. */
  readonly currentBytes: Uint8Array;
}

/** One range of a set-memory request. */
export interface SetMemoryRange {
  /** Kernel virtual address of the first page. */
  readonly addr: bigint;
  /** Guest-physical frames of the pages, in order (resolved by the core). */
  readonly frames: readonly number[];
  /** Current MEM_ATTR bits of each frame. */
  readonly current: readonly number[];
  /** Requested MEM_ATTR bits (the same for every page of the range). */
  readonly requested: number;
  /** SHA-256 of each page's content (snapshot after freezing), hex. */
  readonly pageHashes: readonly string[];
}

/** Every request kind. */
export const REQUEST_KINDS = [
  'kernel-text',
  'module-load',
  'module-unload',
  'text-patch',
  'set-memory',
  'code-load',
  'kexec-image',
  'kernel-manifest',
  'restore-state',
  'module-init-free',
] as const;

/** Largest manifest text a request carries (16 Mi characters). */
export const MANIFEST_TEXT_MAX = 16 << 20;
/** A request kind. */
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** Fields every request has. */
interface RequestBase {
  /** PROTOCOL_VERSION. */
  readonly v: number;
  /** Unique per link; the verdict echoes it. */
  readonly id: number;
  /** Which VM asked (several guests may share one verifier). */
  readonly vm: string;
}

/** A request to the verifier. */
export type VerifyRequest =
  | (RequestBase & {
      /** End of boot: compare the booted kernel text with the signed manifest. */
      readonly kind: 'kernel-text';
      readonly sections: ReadonlyArray<{ readonly name: string; readonly addr: bigint; readonly bytes: Uint8Array }>;
    })
  | (RequestBase & {
      /** A module load: the signed image as supplied, and where the guest placed each section. */
      readonly kind: 'module-load';
      readonly name: string;
      /** The file passed to init_module: ELF plus signature trailer. */
      readonly image: Uint8Array;
      readonly sections: readonly PlacedSection[];
      /**
       * The module's per-CPU pointer (`mod_percpu(mod)`), when it has `.data..percpu`. Not module
       * memory: relocations against per-CPU symbols resolve to it, so the end state depends on it.
       */
      readonly percpu?: bigint;
    })
  | (RequestBase & {
      /** A module unload: forget its symbols and sites. */
      readonly kind: 'module-unload';
      readonly name: string;
    })
  | (RequestBase & {
      /**
       * A loaded module's init returned (do_init_module): its init layout is freed and its
       * ro_after_init data sealed. Allowed with grants for exactly those sections.
       */
      readonly kind: 'module-init-free';
      readonly name: string;
    })
  | (RequestBase & {
      /** A batch of text patches (ftrace, jump labels, static calls, kprobes, SMP lock prefixes). */
      readonly kind: 'text-patch';
      readonly items: readonly PatchItem[];
    })
  | (RequestBase & {
      /** A permission change after boot (set_memory_*, vmap). */
      readonly kind: 'set-memory';
      readonly ranges: readonly SetMemoryRange[];
    })
  | (RequestBase & {
      /** New executable code that is not a module: an eBPF JIT image, a trampoline. */
      readonly kind: 'code-load';
      readonly what: 'bpf-jit' | 'trampoline';
      readonly name: string;
      readonly addr: bigint;
      readonly image: Uint8Array;
      /** Detached Ed25519 signature over the image digest, with the signer's key id (hex). */
      readonly signature: Uint8Array;
      readonly keyId: string;
    })
  | (RequestBase & {
      /**
       * A kernel the guest wants to kexec into (KVM_HC_HEKI_KEXEC_LOAD): the bzImage and its
       * signed manifest, copies the core took. Allowed only when a kernel-vendor key signed the
       * manifest and the image's SHA-256 is the manifest's `vmlinuzSha256`.
       */
      readonly kind: 'kexec-image';
      /** `kexec` (run by KVM_HC_HEKI_KEXEC) or `crash` (run only on a panic). */
      readonly slot: 'kexec' | 'crash';
      readonly image: Uint8Array;
      /** The signed manifest file's text. */
      readonly manifest: string;
    })
  | (RequestBase & {
      /**
       * The VMM reset the VM into a new kernel (kexec, crash kernel): from now on the VM's
       * requests are checked against this signed manifest. Checked again before it is used.
       */
      readonly kind: 'kernel-manifest';
      readonly manifest: string;
    })
  | (RequestBase & {
      /**
       * The VMM restores the VM from a signed state image (resume from hibernation, the end
       * of a migration, shared/vm-image.ts): the verifier checks the image's signature (a `vmm`
       * key), that it is this VM's, and every section's digest, then takes its own per-VM state
       * from it.
       */
      readonly kind: 'restore-state';
      readonly image: Uint8Array;
    });

/** The request of a given kind. */
export type RequestOf<K extends RequestKind> = Extract<VerifyRequest, { kind: K }>;

/** A request without its envelope (version and id): what the core asks, before the link numbers it. */
export type RequestBody = VerifyRequest extends infer R ? (R extends VerifyRequest ? Omit<R, 'v' | 'id'> : never) : never;

/** What a verdict grants for one section of a module. */
export interface SectionGrant {
  readonly shndx: number;
  /** MEM_ATTR bits the section's pages get. */
  readonly permissions: number;
}

/** The verifier's answer. */
export interface Verdict {
  readonly v: number;
  /** The request's id. */
  readonly id: number;
  /** Allowed as a whole (for batches: every item allowed). */
  readonly ok: boolean;
  /** Why, in words; names the deciding plugin and the problem. */
  readonly reason: string;
  /** Per item, for batches (text-patch items, set-memory ranges), in request order. */
  readonly items?: ReadonlyArray<{ readonly ok: boolean; readonly reason: string }>;
  /** For module-load and module-init-free: per-section permissions granted. */
  readonly grants?: readonly SectionGrant[];
  /** Plugins that decided. */
  readonly plugins: readonly string[];
  /**
   * True when nobody decided: the core's link refused to queue the request because too many
   * were in flight (backpressure, {@link VERIFIER_BUSY}); the same request may be allowed when
   * asked again. Always with `ok: false`. TRUST: only the link sets it; it drops the field
   * from the worker's answers, so a verifier cannot turn a denial into "try again".
   */
  readonly retryable?: boolean;
  /**
   * True when nobody decided because the verifier was unavailable (crashed, no progress, an
   * unreadable answer, no worker): the denial {@link failClosedVerdict} makes, reason
   * {@link VERIFIER_UNAVAILABLE}. Always with `ok: false`. TRUST: only the core and its link
   * set it; the link drops it from the worker's answers, as it drops `retryable`.
   */
  readonly failClosed?: boolean;
}

/** A problem with a message's shape. */
export type ShapeError = string;

type Check = (value: unknown, path: string) => ShapeError | undefined;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num: Check = (v, p) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? undefined : `${p} must be a non-negative integer`);
const str: Check = (v, p) => (typeof v === 'string' && v.length <= 4096 ? undefined : `${p} must be a string of at most 4096 characters`);
const big: Check = (v, p) => (typeof v === 'bigint' && v >= 0n && v < 1n << 64n ? undefined : `${p} must be a u64 bigint`);
const bytes: Check = (v, p) => (v instanceof Uint8Array ? undefined : `${p} must be a Uint8Array`);
const text =
  (max: number): Check =>
  (v, p) =>
    typeof v === 'string' && v.length <= max ? undefined : `${p} must be a string of at most ${max} characters`;
const bool: Check = (v, p) => (typeof v === 'boolean' ? undefined : `${p} must be a boolean`);
const oneOf =
  (values: readonly string[]): Check =>
  (v, p) =>
    typeof v === 'string' && values.includes(v) ? undefined : `${p} must be one of ${values.join(', ')}`;
const arr =
  (item: Check, max = 1 << 20): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return `${p} must be an array`;
    if (v.length > max) return `${p} has ${v.length} items, more than ${max}`;
    for (let i = 0; i < v.length; i++) {
      const e = item(v[i], `${p}[${i}]`);
      if (e) return e;
    }
    return undefined;
  };
const obj =
  (fields: Record<string, Check>, optional: Record<string, Check> = {}): Check =>
  (v, p) => {
    if (!isObj(v)) return `${p} must be an object`;
    for (const [k, c] of Object.entries(fields)) {
      const e = c(v[k], `${p}.${k}`);
      if (e) return e;
    }
    for (const [k, c] of Object.entries(optional)) {
      if (v[k] === undefined) continue;
      const e = c(v[k], `${p}.${k}`);
      if (e) return e;
    }
    return undefined;
  };

const base = { v: num, id: num, vm: str };
const REQUEST_SHAPES: Record<RequestKind, Check> = {
  'kernel-text': obj({ ...base, kind: str, sections: arr(obj({ name: str, addr: big, bytes }), 256) }),
  'module-load': obj({ ...base, kind: str, name: str, image: bytes, sections: arr(obj({ shndx: num, addr: big, bytes, size: num }), 65536) }, { percpu: big }),
  'module-unload': obj({ ...base, kind: str, name: str }),
  'module-init-free': obj({ ...base, kind: str, name: str }),
  'text-patch': obj({
    ...base,
    kind: str,
    items: arr(
      obj({ kind: oneOf(['ftrace', 'jump-label', 'static-call', 'kprobe', 'smp-lock']), site: big, oldBytes: bytes, newBytes: bytes, currentBytes: bytes }),
    ),
  }),
  'set-memory': obj({
    ...base,
    kind: str,
    ranges: arr(obj({ addr: big, frames: arr(num), current: arr(num), requested: num, pageHashes: arr(str) }), 65536),
  }),
  'code-load': obj({ ...base, kind: str, what: oneOf(['bpf-jit', 'trampoline']), name: str, addr: big, image: bytes, signature: bytes, keyId: str }),
  'kexec-image': obj({ ...base, kind: str, slot: oneOf(['kexec', 'crash']), image: bytes, manifest: text(MANIFEST_TEXT_MAX) }),
  'kernel-manifest': obj({ ...base, kind: str, manifest: text(MANIFEST_TEXT_MAX) }),
  'restore-state': obj({ ...base, kind: str, image: bytes }),
};

/**
 * Names a value of unknown shape for an error message, and never throws: `String()` throws on
 * a null-prototype object and `JSON.stringify` on a bigint, and either would turn a malformed
 * message into a crash of the validator (found by test/security/fuzz-text-formats.test.ts).
 */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'a Uint8Array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Checks that `msg` is a well-formed request of this protocol version; names the first problem. */
export function validateRequest(msg: unknown): { ok: true; request: VerifyRequest } | { ok: false; id: number; error: ShapeError } {
  const id = isObj(msg) && typeof msg.id === 'number' && Number.isSafeInteger(msg.id) ? msg.id : -1;
  if (!isObj(msg)) return { ok: false, id, error: 'request must be an object' };
  if (msg.v !== PROTOCOL_VERSION) return { ok: false, id, error: `protocol version ${describeValue(msg.v)} is not ${PROTOCOL_VERSION}` };
  const kind = msg.kind;
  if (typeof kind !== 'string' || !(REQUEST_KINDS as readonly string[]).includes(kind)) {
    return { ok: false, id, error: `unknown request kind ${describeValue(kind)}` };
  }
  const e = REQUEST_SHAPES[kind as RequestKind](msg, 'request');
  if (e) return { ok: false, id, error: e };
  const extra = shapeExtras(msg as unknown as VerifyRequest);
  if (extra) return { ok: false, id, error: extra };
  return { ok: true, request: msg as unknown as VerifyRequest };
}

/** Consistency checks a schema cannot express. */
function shapeExtras(r: VerifyRequest): ShapeError | undefined {
  if (r.kind === 'text-patch') {
    for (const [i, it] of r.items.entries()) {
      if (it.oldBytes.length !== it.newBytes.length || it.oldBytes.length !== it.currentBytes.length) {
        return `request.items[${i}]: old, new and current bytes must have the same length`;
      }
      if (it.oldBytes.length === 0 || it.oldBytes.length > 16) return `request.items[${i}]: patch length must be 1..16 bytes`;
    }
  }
  if (r.kind === 'set-memory') {
    for (const [i, rg] of r.ranges.entries()) {
      if (rg.frames.length !== rg.current.length || rg.frames.length !== rg.pageHashes.length) {
        return `request.ranges[${i}]: frames, current and pageHashes must have the same length`;
      }
    }
  }
  if (r.kind === 'module-load') {
    for (const [i, s] of r.sections.entries()) {
      if (s.bytes.length !== 0 && s.bytes.length !== s.size) return `request.sections[${i}]: bytes length ${s.bytes.length} differs from size ${s.size}`;
    }
  }
  return undefined;
}

const VERDICT_SHAPE = obj(
  { v: num, id: num, ok: bool, reason: str, plugins: arr(str, 64) },
  { items: arr(obj({ ok: bool, reason: str })), grants: arr(obj({ shndx: num, permissions: num }), 65536), retryable: bool, failClosed: bool },
);

/** Checks that `msg` is a well-formed verdict; names the first problem. */
export function validateVerdict(msg: unknown): { ok: true; verdict: Verdict } | { ok: false; error: ShapeError } {
  if (isObj(msg) && msg.v !== PROTOCOL_VERSION) return { ok: false, error: `verdict protocol version ${describeValue(msg.v)} is not ${PROTOCOL_VERSION}` };
  const e = VERDICT_SHAPE(msg, 'verdict');
  return e ? { ok: false, error: e } : { ok: true, verdict: msg as Verdict };
}

/** A denial verdict for request `id`. */
export function denial(id: number, reason: string, plugins: readonly string[] = []): Verdict {
  return { v: PROTOCOL_VERSION, id, ok: false, reason, plugins };
}

/** The reason every fail-closed denial carries. */
export const VERIFIER_UNAVAILABLE = 'verifier unavailable';

/** The fail-closed denial of request `id`: nobody decided, because the verifier was unavailable (`why`). */
export function failClosedVerdict(id: number, why: string): Verdict {
  return { v: PROTOCOL_VERSION, id, ok: false, reason: `${VERIFIER_UNAVAILABLE}: ${why}`, plugins: [], failClosed: true };
}

/** The reason every backpressure refusal carries (a retryable verdict). */
export const VERIFIER_BUSY = 'verifier busy';

/** A retryable refusal for request `id`: not decided, because the verifier's queue is full. */
export function busyVerdict(id: number, why: string): Verdict {
  return { v: PROTOCOL_VERSION, id, ok: false, reason: `${VERIFIER_BUSY}: ${why}`, plugins: [], retryable: true };
}

/** True when `v` is a retryable refusal (the hypercall returns -KVM_EAGAIN). */
export function isRetryable(v: { readonly ok: boolean; readonly retryable?: boolean }): boolean {
  return !v.ok && v.retryable === true;
}
