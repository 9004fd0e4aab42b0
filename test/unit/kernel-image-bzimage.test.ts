/**
 * bzImage handling: the real fixture's setup header, and synthetic images (with an xz
 * payload written here in LZMA2 "stored" chunks) for each way a bzImage can be wrong.
 */

import test from 'ava';
import { readFileSync } from 'node:fs';
import { extractVmlinux, parseBzImageHeader, type BzImageError } from '../../shared/kernel-image/bzimage.ts';
import { crc32 } from '../../shared/kernel-image/crc.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/**
 * A valid .xz stream holding `data` in uncompressed LZMA2 chunks (control 0x01 then 0x02),
 * CRC32 check: the XZ format spec 1.0.4 written out by hand.
 */
function xzStore(data: Uint8Array): Uint8Array {
  const out: number[] = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x01, ...le32(crc32(Uint8Array.of(0x00, 0x01)))];
  const blockAt = out.length;
  // Block header: size byte ((12 / 4) - 1), flags (1 filter), LZMA2 id 0x21, props size 1, dict byte 0, pad, CRC32.
  const bh = [0x02, 0x00, 0x21, 0x01, 0x00, 0x00, 0x00, 0x00];
  out.push(...bh, ...le32(crc32(Uint8Array.from(bh))));
  for (let at = 0; at < data.length; at += 0x10000) {
    const chunk = data.subarray(at, at + 0x10000);
    out.push(at === 0 ? 0x01 : 0x02, (chunk.length - 1) >> 8, (chunk.length - 1) & 0xff, ...chunk);
  }
  out.push(0x00);
  const unpadded = out.length - blockAt;
  while ((out.length - blockAt) % 4) out.push(0);
  out.push(...le32(crc32(data)));
  const indexAt = out.length;
  const vli = (v: number) => {
    const b: number[] = [];
    while (v >= 0x80) {
      b.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    b.push(v);
    return b;
  };
  out.push(0x00, 0x01, ...vli(unpadded + 4), ...vli(data.length));
  while ((out.length - indexAt) % 4) out.push(0);
  out.push(...le32(crc32(Uint8Array.from(out.slice(indexAt)))));
  const indexSize = out.length - indexAt;
  const footer = [...le32(indexSize / 4 - 1), 0x00, 0x01];
  out.push(...le32(crc32(Uint8Array.from(footer))), ...footer, 0x59, 0x5a);
  return Uint8Array.from(out);
}

/** A 64-byte ELF64 x86-64 header of the given type, with no sections or segments. */
function tinyElf(type: number): Uint8Array {
  const b = new Uint8Array(64);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  const dv = new DataView(b.buffer);
  dv.setUint16(16, type, true);
  dv.setUint16(18, 62, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, 0x1000000n, true);
  dv.setUint16(52, 64, true);
  return b;
}

interface ImageOpts {
  setupSects?: number;
  protocol?: number;
  payloadOffset?: number;
  payloadLength?: number;
  magic?: number;
}

/** A bzImage: setup sectors with the header, then `payloadOffset` bytes, then the payload. */
function bzImage(payload: Uint8Array, o: ImageOpts = {}): Uint8Array {
  const sects = o.setupSects ?? 3;
  const pm = ((sects === 0 ? 4 : sects) + 1) * 512;
  const off = o.payloadOffset ?? 0x100;
  const img = new Uint8Array(pm + off + payload.length);
  const dv = new DataView(img.buffer);
  img[0x1f1] = sects;
  dv.setUint16(0x1fe, 0xaa55, true);
  dv.setUint32(0x202, o.magic ?? 0x53726448, true);
  dv.setUint16(0x206, o.protocol ?? 0x020f, true);
  img[0x211] = 1;
  dv.setUint32(0x230, 0x200000, true);
  dv.setBigUint64(0x258, 0x1000000n, true);
  dv.setUint32(0x248, off, true);
  dv.setUint32(0x24c, o.payloadLength ?? payload.length, true);
  img.set(payload, pm + off);
  return img;
}

function withSize(xz: Uint8Array, size: number): Uint8Array {
  return Uint8Array.from([...xz, ...le32(size)]);
}

function expectError(t: import('ava').ExecutionContext, image: Uint8Array, kind: BzImageError['kind'], message: RegExp): void {
  const r = extractVmlinux(image);
  if (r.ok) {
    t.fail(`expected ${kind}`);
    return;
  }
  t.is(r.error.kind, kind, r.error.message);
  t.regex(r.error.message, message);
}

test('a synthetic bzImage with an xz payload and size word yields the ELF inside', (t) => {
  const elf = tinyElf(2);
  const r = extractVmlinux(bzImage(withSize(xzStore(elf), elf.length)));
  if (!r.ok) return t.fail(r.error.message);
  t.deepEqual(r.value.vmlinux, elf);
  t.is(r.value.elf.type, 2);
  t.like(r.value.header, { setupSects: 3, protocol: 0x020f, pmOffset: 2048, payloadOffset: 0x100, kernelAlignment: 0x200000, prefAddress: 0x1000000n });
  // The size word is optional: a payload that ends with the xz footer is taken as is.
  t.true(extractVmlinux(bzImage(xzStore(elf))).ok);
});

test('setup_sects 0 means 4', (t) => {
  const h = parseBzImageHeader(bzImage(xzStore(tinyElf(2)), { setupSects: 0 }));
  t.true(h.ok && h.value.setupSects === 4 && h.value.pmOffset === 2560);
});

test('errors name the problem', (t) => {
  const xz = withSize(xzStore(tinyElf(2)), 64);
  expectError(t, new Uint8Array(0x200), 'too-small', /too small for a setup header/);
  expectError(t, bzImage(xz, { magic: 0x12345678 }), 'bad-magic', /no "HdrS" setup header at 0x202/);
  expectError(t, bzImage(xz, { protocol: 0x0206 }), 'old-protocol', /2\.06 is older than 2\.08/);
  expectError(t, bzImage(xz, { payloadLength: xz.length + 1 }), 'payload-out-of-bounds', /payload .* is outside the \d+-byte image/);
  expectError(t, bzImage(Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0)), 'payload-not-xz', /not an xz stream \(starts 1f 8b/);
  expectError(t, bzImage(withSize(xzStore(tinyElf(2)), 65)), 'size-mismatch', /decompressed to 64 bytes but its size word says 65/);
  expectError(t, bzImage(withSize(xzStore(new TextEncoder().encode('not an elf at all')), 17)), 'not-elf', /not a valid ELF64 image: ELF: bad magic/);
  expectError(t, bzImage(withSize(xzStore(tinyElf(1)), 64)), 'not-vmlinux', /ELF type 1.*not an x86-64 EXEC vmlinux/);
  const corrupt = xzStore(tinyElf(2));
  corrupt[40] = corrupt[40]! ^ 0xff; // inside the stored ELF bytes: the CRC32 check catches it
  const r = extractVmlinux(bzImage(withSize(corrupt, 64)));
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'decompress');
    t.is(r.error.xz?.kind, 'check-mismatch');
    t.regex(r.error.message, /decompressing the payload failed: xz: CRC32 mismatch in block 0/);
  }
});

fixtureTest('the fixture vmlinuz setup header', (t) => {
  const img = new Uint8Array(readFileSync(fixtures.vmlinuz));
  const h = parseBzImageHeader(img);
  if (!h.ok) return t.fail(h.error.message);
  t.like(h.value, { setupSects: 39, protocol: 0x020f, pmOffset: 20480, payloadOffset: 716, payloadLength: 8122480 });
  t.deepEqual([...h.value.payload.subarray(0, 6)], [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  // The payload ends with the uncompressed size (scripts/Makefile.lib size_append): 65,906,612.
  const tail = h.value.payload.subarray(h.value.payload.length - 4);
  t.is(new DataView(tail.buffer, tail.byteOffset, 4).getUint32(0, true), 65906612);
});
