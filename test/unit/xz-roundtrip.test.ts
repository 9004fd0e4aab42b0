/**
 * The XZ decoder against the reference encoder: data compressed by the system `xz` with the
 * options a kernel build uses (and variations on them) must decode to the same bytes.
 * Skipped with a message when no `xz` binary is installed.
 */

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { xzDecompress } from '../../shared/kernel-image/xz.ts';
import { declaredUncompressedSize } from '../../shared/kernel-image/xz-size-scan.ts';

const haveXz = spawnSync('xz', ['--version']).status === 0;
if (!haveXz) console.log('xz binary not found on PATH; skipping the xz round-trip tests');
const xzTest = haveXz ? test : test.skip;

function xz(data: Uint8Array, args: string[]): Uint8Array {
  const r = spawnSync('xz', ['--format=xz', '-c', ...args], { input: data, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`xz ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return new Uint8Array(r.stdout);
}

/** xorshift32, so the data is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/**
 * x86-64-like code: functions with prologues, `e8`/`e9` rel32 calls and jumps to a small
 * set of targets (what BCJ exists for), `eb` short jumps, NOPs, some text and some noise.
 */
function x86Like(size: number, seed = 7): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(size);
  const targets = Array.from({ length: 64 }, () => r() % size);
  let i = 0;
  const put = (...bytes: number[]) => {
    for (const b of bytes) if (i < size) out[i++] = b & 0xff;
  };
  const rel32 = (target: number) => {
    const rel = target - (i + 4);
    put(rel, rel >> 8, rel >> 16, rel >> 24);
  };
  while (i < size) {
    const k = r() % 16;
    if (k < 4) {
      put(0xe8);
      rel32(targets[r() % targets.length]!);
    } else if (k < 5) {
      put(0xe9);
      rel32(targets[r() % targets.length]!);
    } else if (k < 7) put(0x55, 0x48, 0x89, 0xe5);
    else if (k < 8) put(0x0f, 0x1f, 0x44, 0x00, 0x00);
    else if (k < 9) put(0x66, 0x90);
    else if (k < 10) put(0xeb, r() % 256);
    else if (k < 12) put(0x48, 0x8b, 0x45, r() % 256);
    else if (k < 13) for (const c of `heki_${r() % 100}\0`) put(c.charCodeAt(0));
    else if (k < 14) put(0xc3, 0xcc, 0xcc, 0xcc);
    else put(r(), r());
  }
  return out;
}

function randomBytes(size: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = r() & 0xff;
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function roundTrip(t: import('ava').ExecutionContext, data: Uint8Array, args: string[]): void {
  const packed = xz(data, args);
  const r = xzDecompress(packed);
  if (!r.ok) {
    t.fail(`${args.join(' ')}: ${r.error.message}`);
    return;
  }
  t.is(r.value.length, data.length, args.join(' '));
  t.true(Buffer.compare(Buffer.from(r.value), Buffer.from(data)) === 0, `${args.join(' ')}: bytes differ`);
}

const code = x86Like(300_000);

for (const check of ['crc64', 'crc32', 'sha256', 'none']) {
  xzTest(`x86 BCJ + LZMA2 with --check=${check}`, (t) => roundTrip(t, code, [`--check=${check}`, '--x86', '--lzma2']));
}

xzTest('the kernel build options: --check=crc32 --x86 --lzma2=dict=32MiB', (t) => roundTrip(t, code, ['--check=crc32', '--x86', '--lzma2=dict=32MiB']));

xzTest('the BCJ filter really changes the data it is given (so the decoder really undoes it)', (t) => {
  const plain = xz(code, ['--check=none', '--lzma2=preset=6']);
  const bcj = xz(code, ['--check=none', '--x86', '--lzma2=preset=6']);
  t.notDeepEqual(plain, bcj);
  const a = xzDecompress(bcj);
  t.true(a.ok && Buffer.from(a.value).equals(Buffer.from(code)));
});

xzTest('multiple blocks via --block-size', (t) => {
  roundTrip(t, code, ['--check=crc64', '--x86', '--lzma2', '--block-size=16KiB']);
  roundTrip(t, code, ['--check=crc32', '--lzma2', '--block-size=1000']);
});

xzTest('multiple blocks with sizes in the block headers (multi-threaded encoder)', (t) => {
  roundTrip(t, code, ['--check=crc32', '--x86', '--lzma2', '--block-size=64KiB', '-T2']);
});

xzTest('incompressible data (uncompressed LZMA2 chunks)', (t) => {
  roundTrip(t, randomBytes(200_000, 3), ['--check=crc64', '--lzma2']);
  roundTrip(t, concat(randomBytes(70_000, 4), code.subarray(0, 50_000), randomBytes(70_000, 5)), ['--check=crc32', '--x86', '--lzma2']);
});

xzTest('more than one LZMA2 chunk (over 2 MiB of output)', (t) => {
  const big = concat(x86Like(1_500_000, 11), randomBytes(600_000, 12), x86Like(1_000_000, 13));
  roundTrip(t, big, ['--check=crc64', '--x86', '--lzma2=preset=1']);
});

xzTest('LZMA property variations (lc, lp, pb, small dictionary, extreme preset)', (t) => {
  const data = concat(code.subarray(0, 100_000), code.subarray(0, 100_000));
  for (const opts of ['lc=0,lp=2,pb=0', 'lc=4,lp=0,pb=4', 'lc=1,lp=3,pb=1', 'dict=4KiB', 'preset=9e', 'preset=0,mode=fast']) {
    roundTrip(t, data, ['--check=crc32', `--lzma2=${opts}`]);
  }
});

xzTest('empty input and one byte', (t) => {
  roundTrip(t, new Uint8Array(0), ['--check=crc64']);
  roundTrip(t, Uint8Array.of(0xe8), ['--check=crc32', '--x86', '--lzma2']);
});

xzTest('concatenated streams with stream padding between and after them', (t) => {
  const a = code.subarray(0, 40_000);
  const b = randomBytes(5_000, 9);
  const packed = concat(xz(a, ['--check=crc32', '--x86', '--lzma2']), new Uint8Array(8), xz(b, ['--check=sha256']), new Uint8Array(4));
  t.is(declaredUncompressedSize(packed), a.length + b.length);
  const r = xzDecompress(packed);
  if (!r.ok) return t.fail(r.error.message);
  t.true(Buffer.from(r.value).equals(Buffer.from(concat(a, b))));
});

xzTest('an unsupported filter (delta) is named', (t) => {
  const r = xzDecompress(xz(code.subarray(0, 1000), ['--delta=dist=4', '--lzma2']));
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'unsupported-filter');
    t.regex(r.error.message, /unsupported filter 0x03/);
  }
});

xzTest('maxOutput is enforced', (t) => {
  const packed = xz(code, ['--check=crc32', '--lzma2']);
  const r = xzDecompress(packed, { maxOutput: code.length - 1 });
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'output-over-limit');
    t.regex(r.error.message, /output over limit/);
  }
  t.true(xzDecompress(packed, { maxOutput: code.length }).ok);
});
