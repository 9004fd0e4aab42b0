/**
 * Request messages of the verification ring (layout in shared/ring/layout.ts): the core
 * writes them with {@link writeTextPatchRequest} and {@link writeUnloadRequest}; the verifier
 * reads them with {@link readRequest}, which checks every field and every record and names
 * the first problem.
 */
import { PROTOCOL_VERSION } from '../protocol.ts';
import { PATCH_RECORD, REQUEST_HEADER, REQUEST_MAGIC, RING_KIND, RING_MAX_RECORDS, RING_STRING_MAX, RQ, align8 } from './layout.ts';
import { PatchRecords } from './patch-records.ts';
import type { SpscRing } from './spsc-ring.ts';
import { readUtf8 } from './utf8.ts';

/** Size of a text-patch request message for a VM name of `vmBytes` UTF-8 bytes and `count` records. */
export function textPatchRequestSize(vmBytes: number, count: number): number {
  return REQUEST_HEADER + align8(vmBytes) + count * PATCH_RECORD;
}

/** Size of a module-unload request message. */
export function unloadRequestSize(vmBytes: number, nameBytes: number): number {
  return REQUEST_HEADER + align8(vmBytes) + align8(nameBytes);
}

function writeHeader(ring: SpscRing, off: number, kind: number, id: number, vm: Uint8Array, count: number, size: number): number {
  const w = off >>> 2;
  ring.u32[w + (RQ.MAGIC >>> 2)] = REQUEST_MAGIC;
  ring.u8[off + RQ.VERSION] = PROTOCOL_VERSION;
  ring.u8[off + RQ.KIND] = kind;
  ring.u8[off + RQ.VM_LEN] = vm.length & 0xff;
  ring.u8[off + RQ.VM_LEN + 1] = vm.length >>> 8;
  ring.f64[(off + RQ.ID) >>> 3] = id;
  ring.u32[w + (RQ.COUNT >>> 2)] = count;
  ring.u32[w + (RQ.SIZE >>> 2)] = size;
  ring.u32[w + (RQ.RSV0 >>> 2)] = 0;
  ring.u32[w + (RQ.RSV1 >>> 2)] = 0;
  const vmAt = off + REQUEST_HEADER;
  ring.u8.set(vm, vmAt);
  ring.u8.fill(0, vmAt + vm.length, vmAt + align8(vm.length));
  return vmAt + align8(vm.length);
}

/**
 * Writes and publishes a text-patch request, keeping `keep` bytes of the ring free. False
 * when it does not fit now (the caller sends it over comlink instead).
 */
export function writeTextPatchRequest(ring: SpscRing, id: number, vm: Uint8Array, records: PatchRecords, keep = 0): boolean {
  if (vm.length > RING_STRING_MAX || records.count > RING_MAX_RECORDS) return false;
  const size = textPatchRequestSize(vm.length, records.count);
  const off = ring.reserve(size, keep);
  if (off < 0) return false;
  const body = writeHeader(ring, off, RING_KIND['text-patch'], id, vm, records.count, size);
  ring.u8.set(records.bytes, body);
  ring.commit();
  return true;
}

/** Writes and publishes a module-unload request; false when it does not fit now. */
export function writeUnloadRequest(ring: SpscRing, id: number, vm: Uint8Array, name: Uint8Array, keep = 0): boolean {
  if (vm.length > RING_STRING_MAX || name.length > RING_STRING_MAX) return false;
  const size = unloadRequestSize(vm.length, name.length);
  const off = ring.reserve(size, keep);
  if (off < 0) return false;
  const body = writeHeader(ring, off, RING_KIND['module-unload'], id, vm, name.length, size);
  ring.u8.set(name, body);
  ring.u8.fill(0, body + name.length, body + align8(name.length));
  ring.commit();
  return true;
}

/** A request as the verifier read it from the ring; every field checked. */
export type RingRequest =
  | { readonly kind: 'text-patch'; readonly id: number; readonly vm: string; readonly records: PatchRecords }
  | { readonly kind: 'module-unload'; readonly id: number; readonly vm: string; readonly name: string };

/** What {@link readRequest} found. */
export type ReadRequestResult =
  | { readonly ok: true; readonly request: RingRequest; readonly size: number }
  /**
   * A malformed message: `id` is the request's id when the header holds a usable one (else
   * -1); `size` is the message size to release, or undefined when the header is too broken to
   * say where the next message starts (the reader then drops everything published).
   */
  | { readonly ok: false; readonly id: number; readonly error: string; readonly size: number | undefined };

function badRequest(id: number, size: number, error: string): ReadRequestResult {
  return { ok: false, id, error, size };
}

/**
 * Reads and checks the request at `off` (from {@link SpscRing.peek}). The records are copied
 * out of the ring, so the message can be released before the verifier decides.
 */
export function readRequest(ring: SpscRing, off: number): ReadRequestResult {
  const w = off >>> 2;
  const avail = ring.available();
  if (avail < REQUEST_HEADER) return { ok: false, id: -1, error: `request header is cut short (${avail} bytes)`, size: undefined };
  const rawId = ring.f64[(off + RQ.ID) >>> 3] as number;
  const id = Number.isSafeInteger(rawId) && rawId >= 0 ? rawId : -1;
  const magic = ring.u32[w] as number;
  if (magic !== REQUEST_MAGIC) return { ok: false, id, error: `bad request magic 0x${magic.toString(16)}`, size: undefined };
  const size = ring.u32[w + (RQ.SIZE >>> 2)] as number;
  if (size % 8 !== 0 || size < REQUEST_HEADER || size > avail)
    return { ok: false, id, error: `request size ${size} is not a multiple of 8 in ${REQUEST_HEADER}..${avail}`, size: undefined };
  if (id < 0) return badRequest(id, size, `request id ${rawId} is not a non-negative integer`);
  const version = ring.u8[off + RQ.VERSION] as number;
  if (version !== PROTOCOL_VERSION) return badRequest(id, size, `protocol version ${version} is not ${PROTOCOL_VERSION}`);
  if (ring.u32[w + (RQ.RSV0 >>> 2)] !== 0 || ring.u32[w + (RQ.RSV1 >>> 2)] !== 0) return badRequest(id, size, 'reserved request header words are not zero');
  const vmLen = (ring.u8[off + RQ.VM_LEN] as number) | ((ring.u8[off + RQ.VM_LEN + 1] as number) << 8);
  if (vmLen > RING_STRING_MAX) return badRequest(id, size, `vm name of ${vmLen} bytes is longer than ${RING_STRING_MAX}`);
  const body = off + REQUEST_HEADER + align8(vmLen);
  if (body > off + size) return badRequest(id, size, `vm name of ${vmLen} bytes runs past the message`);
  for (let k = vmLen; k < align8(vmLen); k++) if (ring.u8[off + REQUEST_HEADER + k] !== 0) return badRequest(id, size, 'vm name padding is not zero');
  const vm = readUtf8(ring.buf, off + REQUEST_HEADER, off + REQUEST_HEADER + vmLen);
  const count = ring.u32[w + (RQ.COUNT >>> 2)] as number;
  const kind = ring.u8[off + RQ.KIND] as number;
  if (kind === RING_KIND['text-patch']) {
    if (count > RING_MAX_RECORDS) return badRequest(id, size, `${count} records, more than ${RING_MAX_RECORDS}`);
    if (size !== textPatchRequestSize(vmLen, count))
      return badRequest(id, size, `message size ${size} does not hold ${count} records of ${PATCH_RECORD} bytes`);
    // TRUST: copied before it is checked, so the checked bytes are the bytes decided on.
    const records = new PatchRecords(ring.u8.slice(body, body + count * PATCH_RECORD));
    const problem = records.validate();
    if (problem) return badRequest(id, size, problem);
    return { ok: true, request: { kind: 'text-patch', id, vm, records }, size };
  }
  if (kind === RING_KIND['module-unload']) {
    if (count > RING_STRING_MAX) return badRequest(id, size, `module name of ${count} bytes is longer than ${RING_STRING_MAX}`);
    if (size !== unloadRequestSize(vmLen, count)) return badRequest(id, size, `message size ${size} does not hold a module name of ${count} bytes`);
    for (let k = count; k < align8(count); k++) if (ring.u8[body + k] !== 0) return badRequest(id, size, 'module name padding is not zero');
    return { ok: true, request: { kind: 'module-unload', id, vm, name: readUtf8(ring.buf, body, body + count) }, size };
  }
  return badRequest(id, size, `unknown request kind code ${kind}`);
}
