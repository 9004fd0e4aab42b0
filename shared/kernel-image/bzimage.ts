/**
 * The x86 bzImage: its real-mode setup header and the compressed kernel it carries.
 *
 * Layout (Documentation/arch/x86/boot.rst, "The real-mode kernel header"): `setup_sects` at
 * 0x1f1 (0 means 4), boot flag 0xAA55 at 0x1fe, "HdrS" at 0x202, protocol version at 0x206,
 * `loadflags` at 0x211, `kernel_alignment` at 0x230, `payload_offset` / `payload_length` at
 * 0x248 / 0x24c (protocol 2.08+), `pref_address` at 0x258, `init_size` at 0x260. The
 * protected-mode code starts at `(setup_sects + 1) * 512`, and the payload at that plus
 * `payload_offset`. For an xz kernel the payload is one .xz stream followed by the
 * uncompressed size as a little-endian u32 (scripts/Makefile.lib, `size_append`).
 */

import { err, ok, type Result } from '../result.ts';
import { parseElf64, type Elf64 } from '../elf/elf64.ts';
import { EM_X86_64, ET_EXEC } from '../elf/types.ts';
import { xzDecompress, type XzError } from './xz.ts';
import { XZ_HEADER_MAGIC } from './xz-format.ts';

/** Why a bzImage was rejected. */
export type BzImageErrorKind =
  'too-small' | 'bad-magic' | 'old-protocol' | 'payload-out-of-bounds' | 'payload-not-xz' | 'decompress' | 'size-mismatch' | 'not-elf' | 'not-vmlinux';

/** A rejected bzImage: `kind` for code, `message` for people. */
export interface BzImageError {
  readonly kind: BzImageErrorKind;
  readonly message: string;
  /** The decoder's error when `kind` is 'decompress'. */
  readonly xz?: XzError;
}

function bzError(kind: BzImageErrorKind, message: string, xz?: XzError): BzImageError {
  return xz === undefined ? { kind, message: `bzImage: ${message}` } : { kind, message: `bzImage: ${message}`, xz };
}

/** "HdrS" as a little-endian u32. */
const HDRS_MAGIC = 0x53726448;
/** The first protocol with payload_offset / payload_length. */
const MIN_PROTOCOL = 0x0208;
/** The header fields we read reach up to init_size (0x260, 4 bytes). */
const HEADER_END = 0x264;

/** The setup-header fields a loader (or this simulator) needs. */
export interface BzImageHeader {
  /** `setup_sects` with 0 already mapped to 4. */
  readonly setupSects: number;
  /** Boot protocol version, e.g. 0x020f. */
  readonly protocol: number;
  /** `loadflags` (bit 0 LOADED_HIGH). */
  readonly loadflags: number;
  /** `kernel_alignment`: physical alignment the kernel needs. */
  readonly kernelAlignment: number;
  /** `pref_address`: preferred load address. */
  readonly prefAddress: bigint;
  /** `init_size`: bytes the kernel needs in place while decompressing and initializing. */
  readonly initSize: number;
  /** File offset of the protected-mode code: `(setup_sects + 1) * 512`. */
  readonly pmOffset: number;
  /** `payload_offset`, relative to the protected-mode code. */
  readonly payloadOffset: number;
  /** `payload_length`. */
  readonly payloadLength: number;
  /** The payload bytes (a view into the image). */
  readonly payload: Uint8Array;
}

/** Reads and checks the setup header, locating the payload. */
export function parseBzImageHeader(image: Uint8Array): Result<BzImageHeader, BzImageError> {
  if (image.length < HEADER_END) return err(bzError('too-small', `${image.length} bytes is too small for a setup header (needs ${HEADER_END})`));
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (dv.getUint32(0x202, true) !== HDRS_MAGIC) return err(bzError('bad-magic', 'bad magic: no "HdrS" setup header at 0x202'));
  const protocol = dv.getUint16(0x206, true);
  if (protocol < MIN_PROTOCOL) {
    return err(
      bzError('old-protocol', `boot protocol ${protocol >> 8}.${(protocol & 0xff).toString().padStart(2, '0')} is older than 2.08 (no payload fields)`),
    );
  }
  const rawSects = image[0x1f1]!;
  const setupSects = rawSects === 0 ? 4 : rawSects;
  const pmOffset = (setupSects + 1) * 512;
  const payloadOffset = dv.getUint32(0x248, true);
  const payloadLength = dv.getUint32(0x24c, true);
  const start = pmOffset + payloadOffset;
  if (start > image.length || payloadLength > image.length - start) {
    return err(bzError('payload-out-of-bounds', `payload [${start}, +${payloadLength}) is outside the ${image.length}-byte image`));
  }
  return ok({
    setupSects,
    protocol,
    loadflags: image[0x211]!,
    kernelAlignment: dv.getUint32(0x230, true),
    prefAddress: dv.getBigUint64(0x258, true),
    initSize: dv.getUint32(0x260, true),
    pmOffset,
    payloadOffset,
    payloadLength,
    payload: image.subarray(start, start + payloadLength),
  });
}

/** A decompressed kernel: the header it came from, the vmlinux bytes and their ELF view. */
export interface ExtractedKernel {
  readonly header: BzImageHeader;
  readonly vmlinux: Uint8Array;
  readonly elf: Elf64;
}

/** Checks that `bytes` are an ELF64 EXEC x86-64 image, i.e. a vmlinux. */
export function checkVmlinuxElf(bytes: Uint8Array): Result<Elf64, BzImageError> {
  const elf = parseElf64(bytes);
  if (!elf.ok) return err(bzError('not-elf', `decompressed payload is not a valid ELF64 image: ${elf.error.message}`));
  if (elf.value.type !== ET_EXEC || elf.value.machine !== EM_X86_64) {
    return err(bzError('not-vmlinux', `decompressed payload is ELF type ${elf.value.type}, machine ${elf.value.machine}: not an x86-64 EXEC vmlinux`));
  }
  return ok(elf.value);
}

function startsWithXzMagic(b: Uint8Array): boolean {
  if (b.length < XZ_HEADER_MAGIC.length) return false;
  for (let i = 0; i < XZ_HEADER_MAGIC.length; i++) if (b[i] !== XZ_HEADER_MAGIC[i]) return false;
  return true;
}

function endsWithFooterMagic(b: Uint8Array, end: number): boolean {
  return end >= 2 && b[end - 2] === 0x59 && b[end - 1] === 0x5a;
}

/**
 * Parses the header, decompresses the xz payload (stripping and checking the appended size
 * word when present) and checks the result is an x86-64 EXEC vmlinux.
 */
export function extractVmlinux(image: Uint8Array, opts: { maxOutput?: number } = {}): Result<ExtractedKernel, BzImageError> {
  const h = parseBzImageHeader(image);
  if (!h.ok) return h;
  const payload = h.value.payload;
  if (!startsWithXzMagic(payload)) {
    const head = [...payload.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    return err(bzError('payload-not-xz', `payload is not an xz stream (starts ${head}); only xz kernels are supported`));
  }
  let stream = payload;
  let declared: number | undefined;
  if (!endsWithFooterMagic(payload, payload.length) && endsWithFooterMagic(payload, payload.length - 4)) {
    const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    declared = dv.getUint32(payload.length - 4, true);
    stream = payload.subarray(0, payload.length - 4);
  }
  const out = xzDecompress(stream, opts.maxOutput === undefined ? {} : { maxOutput: opts.maxOutput });
  if (!out.ok) return err(bzError('decompress', `decompressing the payload failed: ${out.error.message}`, out.error));
  if (declared !== undefined && declared !== out.value.length) {
    return err(bzError('size-mismatch', `payload decompressed to ${out.value.length} bytes but its size word says ${declared}`));
  }
  const elf = checkVmlinuxElf(out.value);
  if (!elf.ok) return elf;
  return ok({ header: h.value, vmlinux: out.value, elf: elf.value });
}
