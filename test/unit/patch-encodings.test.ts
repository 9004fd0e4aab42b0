/**
 * x86 patch encodings (shared/x86/patch-encodings.ts): the NOPs, call/jmp rel32, jmp rel8,
 * int3 and the static-call forms, encoded and decoded with rel = target - (site + len),
 * wrapping at 2^64.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import {
  INT3,
  NOP2,
  NOP5,
  RET5,
  XOR5RAX,
  bytesEqual,
  decodePatchInsn,
  encodeCall32,
  encodeJmp32,
  encodeJmp8,
  encodeJumpLabel,
  encodeStaticCall,
  formatBytes,
  relFits,
  relOperand,
} from '../../shared/x86/patch-encodings.ts';
import { decodeMcountSite } from '../../shared/kernel-image/mcount.ts';
import { classifyJumpSite } from '../../shared/kernel-image/jump-table.ts';

const SITE = 0xffffffff81000100n;

test('the NOPs and int3 are the Linux bytes', (t) => {
  t.deepEqual([...NOP5], [0x0f, 0x1f, 0x44, 0x00, 0x00]);
  t.deepEqual([...NOP2], [0x66, 0x90]);
  t.is(INT3, 0xcc);
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.from(NOP5)), { kind: 'nop5' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.from(NOP2)), { kind: 'nop2' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0xcc)), { kind: 'int3' });
});

test('call rel32: rel is target - (site + 5), little-endian', (t) => {
  const call = encodeCall32(SITE, SITE + 0x1000n);
  t.is(formatBytes(call), 'e8 fb 0f 00 00');
  t.deepEqual(decodePatchInsn(SITE, call), { kind: 'call32', target: SITE + 0x1000n });
  const back = encodeCall32(SITE, SITE - 0x10n);
  t.is(formatBytes(back), 'e8 eb ff ff ff');
  t.deepEqual(decodePatchInsn(SITE, back), { kind: 'call32', target: SITE - 0x10n });
});

test('jmp rel32 and jmp rel8 round-trip, and rel8 reach is -128..127 from the next instruction', (t) => {
  t.is(formatBytes(encodeJmp32(SITE, SITE + 5n)), 'e9 00 00 00 00');
  t.deepEqual(decodePatchInsn(SITE, encodeJmp32(SITE, SITE + 0x700n)), { kind: 'jmp32', target: SITE + 0x700n });
  t.is(formatBytes(encodeJmp8(SITE, SITE + 2n + 127n)), 'eb 7f');
  t.is(formatBytes(encodeJmp8(SITE, SITE + 2n - 128n)), 'eb 80');
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0xeb, 0x80)), { kind: 'jmp8', target: SITE - 126n });
  t.throws(() => encodeJmp8(SITE, SITE + 2n + 128n), { instanceOf: RangeError });
  t.throws(() => encodeJmp8(SITE, SITE + 2n - 129n), { instanceOf: RangeError });
  t.throws(() => encodeCall32(SITE, SITE + 5n + (1n << 31n)), { instanceOf: RangeError });
  t.notThrows(() => encodeCall32(SITE, SITE + 5n + (1n << 31n) - 1n));
  t.notThrows(() => encodeJmp32(SITE, SITE + 5n - (1n << 31n)));
});

test('jump-label encodings: NOP of the length when disabled, the jump when enabled', (t) => {
  t.deepEqual(encodeJumpLabel(SITE, 2, SITE + 0x40n, false), Uint8Array.from(NOP2));
  t.deepEqual(encodeJumpLabel(SITE, 5, SITE + 0x40n, false), Uint8Array.from(NOP5));
  t.is(formatBytes(encodeJumpLabel(SITE, 2, SITE + 0x40n, true)), 'eb 3e');
  t.is(formatBytes(encodeJumpLabel(SITE, 5, SITE + 0x40n, true)), 'e9 3b 00 00 00');
});

test('addresses wrap modulo 2^64', (t) => {
  const top = 0xfffffffffffffff0n;
  const call = encodeCall32(top, 0x10n);
  t.is(relOperand(top, 5, 0x10n), 0x1bn);
  t.deepEqual(decodePatchInsn(top, call), { kind: 'call32', target: 0x10n });
  t.true(relFits(top, 2, 0x10n, 8));
});

test('decode insists on the exact length and opcode', (t) => {
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0xe8, 0, 0, 0)), { kind: 'other' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0xe8, 0, 0, 0, 0, 0)), { kind: 'other' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x01)), { kind: 'other' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0x66, 0x91)), { kind: 'other' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0x90)), { kind: 'other' });
  t.deepEqual(decodePatchInsn(SITE, new Uint8Array(0)), { kind: 'other' });
  t.deepEqual(decodePatchInsn(SITE, Uint8Array.of(0xeb, 0, 0, 0, 0)), { kind: 'other' }, 'eb is a 2-byte instruction');
  t.true(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  t.false(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3)));
});

test('decode works on a view with a byte offset', (t) => {
  const buf = Uint8Array.of(0xaa, 0xaa, 0xaa, ...encodeCall32(SITE, SITE + 0x1234n));
  t.deepEqual(decodePatchInsn(SITE, buf.subarray(3)), { kind: 'call32', target: SITE + 0x1234n });
});

const kernelAddr = fc.bigInt(0xffffffff80000000n, 0xffffffffbfffffffn);

test('property: encode then decode gives the target back, and agrees with the kernel-image decoders', async (t) => {
  await checkProperty(
    t,
    'property: encode then decode gives the target back, and agrees with the kernel-image decoders',
    fc.property(kernelAddr, fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: -128, max: 127 }), (site, rel32, rel8) => {
      const t32 = (site + 5n + BigInt(rel32)) & ((1n << 64n) - 1n);
      const call = encodeCall32(site, t32);
      const jmp = encodeJmp32(site, t32);
      const t8 = (site + 2n + BigInt(rel8)) & ((1n << 64n) - 1n);
      const jmp8 = encodeJmp8(site, t8);
      const c = decodePatchInsn(site, call);
      const j = decodePatchInsn(site, jmp);
      const j8 = decodePatchInsn(site, jmp8);
      return (
        c.kind === 'call32' &&
        c.target === t32 &&
        j.kind === 'jmp32' &&
        j.target === t32 &&
        j8.kind === 'jmp8' &&
        j8.target === t8 &&
        decodeMcountSite(site, call).target === t32 &&
        classifyJumpSite(site, jmp)?.jumpsTo === t32 &&
        classifyJumpSite(site, jmp8)?.jumpsTo === t8
      );
    }),
    scaledRuns(100),
  );
});

test('static-call encodings follow 6.1 __static_call_transform for each role', (t) => {
  const site = 0xffffffff81000a00n;
  const f = 0xffffffff81003000n;
  const syms = { return0: 0xffffffff812603e0n, returnThunk: 0xffffffff81e01d30n };
  t.deepEqual(encodeStaticCall(site, 'call', f, syms), encodeCall32(site, f));
  t.deepEqual(encodeStaticCall(site, 'call', null, syms), Uint8Array.from(NOP5));
  t.is(formatBytes(encodeStaticCall(site, 'call', syms.return0, syms)), '2e 2e 2e 31 c0');
  t.deepEqual(encodeStaticCall(site, 'call', syms.return0, {}), encodeCall32(site, syms.return0), 'without the symbol, a plain call');
  t.deepEqual(encodeStaticCall(site, 'tail', f, syms), encodeJmp32(site, f));
  t.deepEqual(encodeStaticCall(site, 'tail', syms.return0, syms), encodeJmp32(site, syms.return0), 'a tail call to return0 stays a jmp');
  t.deepEqual(encodeStaticCall(site, 'trampoline', null, syms), encodeJmp32(site, syms.returnThunk));
  t.deepEqual(encodeStaticCall(site, 'tail', null, {}), Uint8Array.from(RET5));
  t.is(formatBytes(RET5), 'c3 cc cc cc cc');
  t.is(decodePatchInsn(site, Uint8Array.from(XOR5RAX)).kind, 'other', 'the generic decoder leaves the xor to the static-call plugin');
  t.throws(() => encodeStaticCall(site, 'call', 0x7fff_0000_0000n), { instanceOf: RangeError });
});
