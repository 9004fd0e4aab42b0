/**
 * Byte layout of the verification ring: the data plane between the core
 * (hypervisor/verifier-link) and the verifier worker (verifier-vm/ring-server.ts), beside
 * comlink, which stays the control plane and the fallback.
 *
 * One SharedArrayBuffer per verifier worker holds, in order:
 *
 * ```
 * [control words: 512 bytes][request ring: core -> verifier][verdict ring: verifier -> core]
 * ```
 *
 * Each ring is a single-producer, single-consumer byte ring of messages. A message is a
 * fixed-size header followed by fixed-size records and, for verdicts, a heap of UTF-8 strings;
 * every message starts 8-aligned and its size is a multiple of 8. A message never wraps: when
 * it does not fit before the end, the producer writes a {@link WRAP_MAGIC} word and the message
 * starts again at offset 0.
 *
 * Numbers are in host byte order: both ends are threads of one process sharing the memory.
 *
 * TRUST: the ring carries bytes only, never objects. The verifier decodes and validates every
 * record before anything looks at it (a malformed record is a denial naming the problem, as a
 * malformed comlink request is); the core validates every verdict record, and one it cannot
 * read is "verifier unavailable" (fail closed), exactly as on comlink.
 */

/** Alignment of every message and of every message size. */
export const RING_ALIGN = 8;

/** First word of a request message: `HRQ1`. */
export const REQUEST_MAGIC = 0x3151_5248;
/** First word of a verdict message: `HVD1`. */
export const VERDICT_MAGIC = 0x3144_5648;
/** The rest of the ring up to its end is unused: the next message starts at offset 0 (`HWRP`). */
export const WRAP_MAGIC = 0x5052_5748;

/** Request header bytes. */
export const REQUEST_HEADER = 32;
/**
 * Request header fields (byte offsets): magic u32, protocol version u8, kind code u8, vm
 * length u16 (UTF-8 bytes, after the header, padded to 8), id f64, count u32 (text-patch:
 * records; module-unload: name bytes), size u32 (whole message), two reserved u32 (zero).
 */
export const RQ = { MAGIC: 0, VERSION: 4, KIND: 5, VM_LEN: 6, ID: 8, COUNT: 16, SIZE: 20, RSV0: 24, RSV1: 28 } as const;

/** Request kinds the ring carries, by code. Every other kind goes over comlink. */
export const RING_KIND = { 'text-patch': 1, 'module-unload': 2 } as const;
/** A request kind the ring carries. */
export type RingKind = keyof typeof RING_KIND;

/** Bytes of one text-patch record. */
export const PATCH_RECORD = 40;
/**
 * Text-patch record fields (byte offsets): site low and high u32, patch kind code u8
 * (shared/heki-descriptors.ts PATCH_KIND), length u8 (1..8), six reserved bytes (zero),
 * old, new and current bytes, 8 bytes each, zero beyond the length.
 */
export const PR = { SITE_LO: 0, SITE_HI: 4, KIND: 8, LEN: 9, PAD: 10, OLD: 16, NEW: 24, CUR: 32 } as const;
/** Longest patch a record holds; a longer one (the protocol allows 16) goes over comlink. */
export const PATCH_RECORD_MAX_LEN = 8;
/** Most records in one request: the guest ABI's batch bound (shared/heki-descriptors.ts). */
export const RING_MAX_RECORDS = 65536;

/** Verdict header bytes. */
export const VERDICT_HEADER = 40;
/**
 * Verdict header fields (byte offsets): magic u32, protocol version u8, flags u8
 * ({@link VERDICT_FLAG}), plugin count u16, id f64, item count u32, size u32, reason bytes
 * u32, template count u16, reserved u16, string-area bytes u32, reserved u32.
 *
 * After the header: the string area (the reason; each plugin name as u16 length + bytes;
 * each reason template as u16 prefix length, u16 suffix length, prefix, suffix), padded to 8;
 * then one {@link ITEM_RECORD} per item; then the item texts, concatenated, padded to 8.
 */
export const VD = {
  MAGIC: 0,
  VERSION: 4,
  FLAGS: 5,
  PLUGINS: 6,
  ID: 8,
  ITEMS: 16,
  SIZE: 20,
  REASON_LEN: 24,
  TEMPLATES: 28,
  RSV0: 30,
  STRINGS_LEN: 32,
  RSV1: 36,
} as const;
/** Verdict flags. */
export const VERDICT_FLAG = {
  /** Allowed. */
  OK: 1,
  /** The verdict did not fit the ring: fetch it over the control plane (`collect`). */
  PARKED: 2,
  /** Item records follow. */
  ITEMS: 4,
} as const;
/** Every defined flag bit. */
export const VERDICT_FLAGS_MASK = VERDICT_FLAG.OK | VERDICT_FLAG.PARKED | VERDICT_FLAG.ITEMS;

/** Bytes of one item verdict record: ok u8 (0/1), form u8, reserved u16, value u32. */
export const ITEM_RECORD = 8;
/**
 * How an item's reason is given: `TEXT`, value = its UTF-8 length in the text heap;
 * `TEMPLATE`, value = a template index: the reason is `prefix + hex(site) + suffix`, with the
 * site of the request's record at the same index.
 */
export const ITEM_FORM = { TEXT: 0, TEMPLATE: 1 } as const;

/** Longest string (UTF-8 bytes) the ring carries; a verdict with a longer one is parked. */
export const RING_STRING_MAX = 4096;
/** Most plugin names in a verdict (the protocol's bound). */
export const RING_MAX_PLUGINS = 64;
/** Most reason templates in one verdict. */
export const RING_MAX_TEMPLATES = 4096;

/**
 * Control words (Int32Array indices), each on its own 64-byte line so that the producer's
 * and the consumer's words do not share a cache line. Positions are free-running u32 byte
 * counters; a ring offset is `position & (capacity - 1)`.
 */
export const CTL = {
  /** Request ring: written by the core. */
  REQ_HEAD: 0,
  /** Request ring: written by the verifier. */
  REQ_TAIL: 16,
  /** Verdict ring: written by the verifier. */
  VER_HEAD: 32,
  /** Verdict ring: written by the core. */
  VER_TAIL: 48,
  /**
   * 1 while the verifier is parked waiting on {@link CTL.DOORBELL} (the core then rings it
   * when it publishes a request).
   */
  WORKER_PARKED: 64,
  /** 1 while the core waits for verdicts in Atomics.waitAsync (the verifier then notifies). */
  CORE_PARKED: 80,
  /**
   * Nonzero once the verifier's thread is exiting (its exit code + 1), written by its exit
   * handler: the core learns of a crash at once instead of when the thread's exit event comes.
   */
  DEAD: 96,
  /**
   * What a parked verifier waits on: the core adds 1 and notifies when it publishes a request
   * while the verifier is parked, and when it posts a control-plane (comlink) message.
   */
  DOORBELL: 112,
  /**
   * (On DOORBELL's line: the core writes both.) Control-plane messages the core has posted to the verifier (it adds 1 after each post):
   * a verifier that sees it change takes an event-loop turn, so comlink is served although
   * the ring loop spins or is parked in a blocking wait.
   */
  CONTROL: 113,
} as const;
/** Bytes of the control block at the start of the SharedArrayBuffer. */
export const CTL_BYTES = 512;

/** Rounds `n` up to {@link RING_ALIGN}. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Where the rings of one SharedArrayBuffer are, as the core hands it to the verifier. */
export interface RingLayout {
  readonly sab: SharedArrayBuffer;
  /** Request ring capacity in bytes (a power of two). */
  readonly requestBytes: number;
  /** Verdict ring capacity in bytes (a power of two). */
  readonly verdictBytes: number;
  /**
   * Bytes of the verdict ring the verifier keeps free for "parked" markers: it writes a full
   * verdict only when it leaves this much, so a marker always fits (one per request the core
   * may have in flight on the ring).
   */
  readonly reserveBytes: number;
}

/** Problems with a layout, named; undefined when it is usable. */
export function checkRingLayout(l: RingLayout): string | undefined {
  const pow2 = (n: number) => Number.isSafeInteger(n) && n >= 4096 && n <= 1 << 30 && (n & (n - 1)) === 0;
  if (!(l.sab instanceof SharedArrayBuffer)) return 'ring memory must be a SharedArrayBuffer';
  if (!pow2(l.requestBytes)) return `request ring size ${l.requestBytes} must be a power of two in 4 KiB..1 GiB`;
  if (!pow2(l.verdictBytes)) return `verdict ring size ${l.verdictBytes} must be a power of two in 4 KiB..1 GiB`;
  if (l.sab.byteLength !== CTL_BYTES + l.requestBytes + l.verdictBytes)
    return `ring memory is ${l.sab.byteLength} bytes, the layout needs ${CTL_BYTES + l.requestBytes + l.verdictBytes}`;
  if (!Number.isSafeInteger(l.reserveBytes) || l.reserveBytes < 0 || l.reserveBytes > l.verdictBytes / 2)
    return `verdict reserve ${l.reserveBytes} must be in 0..${l.verdictBytes / 2}`;
  return undefined;
}
