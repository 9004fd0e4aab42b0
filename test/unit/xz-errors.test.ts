/**
 * The XZ decoder on damaged input: each kind of damage gives the named, typed error, and no
 * damage makes it throw. Uses a small embedded .xz file (made by `xz --check=crc32 --x86
 * --lzma2`, the kernel's options), so these tests need no xz binary.
 */

import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import { crc32, crc32Portable, crc64BigInt } from '../../shared/kernel-image/crc.ts';
import { bcjX86Decode } from '../../shared/kernel-image/bcj-x86.ts';
import { OutputBuffer } from '../../shared/kernel-image/output-buffer.ts';
import { xzDecompress, type XzError } from '../../shared/kernel-image/xz.ts';
import { declaredUncompressedSize } from '../../shared/kernel-image/xz-size-scan.ts';

/** `xz --format=xz --check=crc32 --x86 --lzma2 -c` of {@link sampleData}. */
const SAMPLE_XZ = Buffer.from(
  '/Td6WFoAAAFpIt42AgEEACEBFgANhjUf4APnADZdACqSDaTkvjAg5y7i7H3lrqldsbUfpvguNmfhUR0JFVWKRe9RspCYYB6qHbiEqfZdnet2xxkAAAAAALrT65UAAU7oBwAAAGYLdHM+MA2LAgAAAAABWVo=',
  'base64',
);
/** Offsets inside SAMPLE_XZ (from `xz -lvv`): block header at 12 (12 bytes), LZMA2 data at 24 (62 bytes). */
const BLOCK_AT = 12;
const DATA_AT = 24;
const DATA_LEN = 62;
const CHECK_AT = 88;

/** The 1000 bytes the sample holds: prologues, `e8`/`e9` rel32 branches and text. */
function sampleData(): Uint8Array {
  const out: number[] = [];
  const le = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
  for (let i = 0; i < 40; i++) {
    out.push(0x55, 0x48, 0x89, 0xe5);
    out.push(0xe8, ...le(0x1000 - out.length - 5));
    out.push(0x48, 0x8b, 0x45, 0xf8);
    out.push(0xe9, ...le(-out.length - 5));
    for (const c of `heki ${i % 7}\n`) out.push(c.charCodeAt(0));
  }
  return Uint8Array.from(out);
}

function sample(): Uint8Array {
  return new Uint8Array(SAMPLE_XZ);
}

function le32(b: Uint8Array, at: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
}

function expectError(t: import('ava').ExecutionContext, input: Uint8Array, kind: XzError['kind'], message: RegExp): void {
  const r = xzDecompress(input);
  if (r.ok) {
    t.fail(`expected ${kind}, got ${r.value.length} bytes`);
    return;
  }
  t.is(r.error.kind, kind, r.error.message);
  t.regex(r.error.message, message);
}

test('the sample decodes to the data it was made from (BCJ undone, CRC32 checked)', (t) => {
  const r = xzDecompress(sample());
  if (!r.ok) return t.fail(r.error.message);
  t.deepEqual(r.value, sampleData());
  t.is(declaredUncompressedSize(sample()), 1000);
});

test('bad magic', (t) => {
  const b = sample();
  b[1] = 0x38;
  expectError(t, b, 'bad-magic', /bad magic at offset 0/);
  expectError(t, new TextEncoder().encode('not xz at all'), 'bad-magic', /bad magic/);
});

test('empty input is truncated', (t) => expectError(t, new Uint8Array(0), 'truncated', /truncated input at offset 0/));

test('every truncation is reported as truncated input, never thrown', (t) => {
  const b = sample();
  for (let n = 0; n < b.length; n++) {
    const r = xzDecompress(b.subarray(0, n));
    t.false(r.ok, `prefix of ${n}`);
    if (!r.ok) t.is(r.error.kind, 'truncated', `prefix of ${n}: ${r.error.message}`);
  }
});

test('corrupt compressed data is caught by the decoder or by the CRC', (t) => {
  const kinds = new Set<string>();
  for (let i = DATA_AT; i < DATA_AT + DATA_LEN; i++) {
    for (const mask of [0x01, 0x10, 0x80]) {
      const b = sample();
      b[i] = b[i]! ^ mask;
      const r = xzDecompress(b);
      t.false(r.ok, `flip ${mask} at ${i}`);
      if (r.ok) continue;
      kinds.add(r.error.kind);
      t.true(['corrupt-data', 'check-mismatch', 'truncated'].includes(r.error.kind), r.error.message);
      if (r.error.kind === 'corrupt-data') t.regex(r.error.message, /corrupt data at offset \d+/);
      if (r.error.kind === 'check-mismatch') t.regex(r.error.message, /CRC32 mismatch in block 0/);
    }
  }
  t.true(kinds.has('corrupt-data'));
  t.true(kinds.has('check-mismatch'));
});

test('a wrong CRC32 check field is a CRC mismatch in block 0', (t) => {
  const b = sample();
  b[CHECK_AT] = b[CHECK_AT]! ^ 0xff;
  expectError(t, b, 'check-mismatch', /CRC32 mismatch in block 0/);
});

test('a damaged block header fails its own CRC32', (t) => {
  const b = sample();
  b[BLOCK_AT + 4] = b[BLOCK_AT + 4]! ^ 0x01;
  expectError(t, b, 'check-mismatch', /CRC32 mismatch in the header of block 0/);
});

test('an unsupported check type is named', (t) => {
  const b = sample();
  b[7] = 0x02; // a reserved 4-byte check ID; fix the header CRC so only the type is wrong
  le32(b, 8, crc32(b.subarray(6, 8)));
  expectError(t, b, 'unsupported-check', /unsupported check type 0x2/);
});

test('an unsupported filter is named with its ID', (t) => {
  const b = sample();
  // Block header: size, flags, filter 0x04 (x86), props size 0, filter 0x21 ... -> make it 0x05 (PowerPC).
  t.is(b[BLOCK_AT + 2], 0x04);
  b[BLOCK_AT + 2] = 0x05;
  le32(b, BLOCK_AT + 8, crc32(b.subarray(BLOCK_AT, BLOCK_AT + 8)));
  expectError(t, b, 'unsupported-filter', /unsupported filter 0x05/);
});

test('trailing garbage after the stream is not a stream', (t) => {
  const b = new Uint8Array([...sample(), 0x61, 0x62, 0x63, 0x64]);
  expectError(t, b, 'bad-magic', new RegExp(`bad magic at offset ${SAMPLE_XZ.length}`));
});

test('stream padding must be a multiple of four', (t) => {
  expectError(t, new Uint8Array([...sample(), 0, 0, 0]), 'bad-header', /stream padding .* not a multiple of 4/);
  const ok = xzDecompress(new Uint8Array([...sample(), 0, 0, 0, 0]));
  t.true(ok.ok);
});

test('an index that disagrees with the blocks is an index mismatch', (t) => {
  const b = sample();
  // The index follows the check field: 00, count, unpadded, uncompressed (e8 07 = 1000), pad, CRC32.
  const indexAt = CHECK_AT + 4;
  t.is(b[indexAt], 0x00);
  b[indexAt + 3] = 0xe9; // 1001
  le32(b, indexAt + 8, crc32(b.subarray(indexAt, indexAt + 8)));
  expectError(t, b, 'index-mismatch', /index record 0/);
});

test('output over limit', (t) => {
  const r = xzDecompress(sample(), { maxOutput: 999 });
  t.false(r.ok);
  if (!r.ok) t.is(r.error.kind, 'output-over-limit');
});

test('random damage never throws', async (t) => {
  const base = sample();
  await checkProperty(
    t,
    'random damage never throws',
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.nat(base.length),
      (edits, cut) => {
        const b = base.slice(0, Math.max(cut, 1));
        for (const [i, v] of edits) if (i < b.length) b[i] = v;
        const r = xzDecompress(b, { maxOutput: 1 << 20 });
        return r.ok ? r.value.length <= 1 << 20 : r.error.message.startsWith('xz: ');
      },
    ),
    scaledRuns(3000),
  );
});

test('CRC32 and CRC64 match the standard check values', (t) => {
  const check = new TextEncoder().encode('123456789');
  t.is(crc32(check), 0xcbf43926);
  t.is(crc32Portable(check), 0xcbf43926);
  t.is(crc64BigInt(check), 0x995dc9bbdf1939fan);
  const noise = Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24);
  t.is(crc32Portable(noise), crc32(noise));
});

test('BCJ x86 decode turns an absolute call target back into rel32', (t) => {
  // Encoded form: e8 with the absolute target 0x1000 at position 16 -> rel32 = 0x1000 - (16 + 5).
  const buf = new Uint8Array(32);
  buf.set([0xe8, 0x00, 0x10, 0x00, 0x00], 16);
  bcjX86Decode(buf, 0, buf.length);
  t.deepEqual([...buf.subarray(16, 21)], [0xe8, 0xeb, 0x0f, 0x00, 0x00]);
  // Operands whose top byte is not 00/ff are not call targets and stay as they are.
  const other = new Uint8Array(16);
  other.set([0xe8, 1, 2, 3, 4], 2);
  bcjX86Decode(other, 0, other.length);
  t.deepEqual([...other.subarray(2, 7)], [0xe8, 1, 2, 3, 4]);
});

test('the output buffer grows by doubling and stops at its limit', (t) => {
  const o = new OutputBuffer(0, 3 << 20);
  t.true(o.ensure(10));
  o.buf.set([1, 2, 3], 0);
  o.length = 3;
  t.true(o.ensure(2 << 20));
  t.true(o.buf.length >= (2 << 20) + 3);
  t.deepEqual([...o.buf.subarray(0, 3)], [1, 2, 3]);
  t.false(o.ensure(3 << 20));
  t.deepEqual([...o.result()], [1, 2, 3]);
});
