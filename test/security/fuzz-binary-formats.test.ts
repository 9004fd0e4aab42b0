/**
 * Fuzzing the binary formats that cross a trust boundary (issue 5, part 3): ELF files, module
 * signature trailers (and the verifier's signature check behind them, PKCS#7 included) and xz
 * streams.
 *
 * Attack: a guest (or a tampered file on the host) hands the core or the verifier a damaged
 * image, hoping a parser throws (a crash of the verifier VM, a denial of service of the core),
 * loops forever, or accepts garbage.
 * Expected stop: every input, random or a mutation of a valid seed, gives a typed error naming
 * the problem or a valid result; nothing throws, nothing takes more than HANG_MS. Inputs are
 * bounded in size (seeds of a few KiB plus at most 8 edits, or at most 64 KiB of random bytes).
 */
import test from 'ava';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseElf64 } from '../../shared/elf/elf64.ts';
import { parseModuleSignature, stripModuleSignature, MODULE_SIG_MARKER } from '../../shared/module-signature.ts';
import { buildModuleImage } from '../../shared/module/module-image.ts';
import { xzDecompress } from '../../shared/kernel-image/xz.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { verifyModuleSignature } from '../../verifier-vm/signature/verify-module.ts';
import { signModuleFile } from '../../tools/sign-module.ts';
import { SYNTH_FENTRY, synthResolve, syntheticModule } from '../unit/module-elf-builder.ts';
import { fixtures, haveFixtures, needsFixtures } from '../helpers/fixtures.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';
import { byteMutationArb, checkProperty, isTypedError, mutateBytes, noThrowNoHang, scaledRuns } from '../helpers/fuzz.ts';

const keys = testKeyring();
const synth = syntheticModule();
const signedSynth = (() => {
  const r = signModuleFile(synth, keys.keyPair);
  if (!r.ok) throw new Error(r.error);
  return r.value;
})();
const crc7 = haveFixtures && existsSync(`${fixtures.modulesDir}/crc7.ko`) ? new Uint8Array(readFileSync(`${fixtures.modulesDir}/crc7.ko`)) : undefined;
const keyring = (() => {
  const certs =
    haveFixtures && existsSync(fixtures.signingKeyDer) ? [{ der: new Uint8Array(readFileSync(fixtures.signingKeyDer)), role: 'module-signing' as const }] : [];
  const r = Keyring.fromData({ ...keys.data, certificates: certs });
  if (!r.ok) throw new Error(r.error);
  return r.value;
})();
if (!crc7) console.log(`fixtures not found in ${fixtures.modulesDir}: the PKCS#7 seed (crc7.ko) is left out`);
// Without the fixtures the corpus lacks its real PKCS#7 seed: with HEKI_REQUIRE_FIXTURES=1 that fails.
needsFixtures(test)('the real PKCS#7 seed (crc7.ko) and its certificate are in the corpus', (t) => {
  t.truthy(crc7);
  t.is(keyring.certificates().length, 1);
});

/** `xz --format=xz --check=crc32 --x86 --lzma2 -c` of 1000 bytes of x86-like data (as in xz-errors.test.ts). */
const SAMPLE_XZ = Buffer.from(
  '/Td6WFoAAAFpIt42AgEEACEBFgANhjUf4APnADZdACqSDaTkvjAg5y7i7H3lrqldsbUfpvguNmfhUR0JFVWKRe9RspCYYB6qHbiEqfZdnet2xxkAAAAAALrT65UAAU7oBwAAAGYLdHM+MA2LAgAAAAABWVo=',
  'base64',
);

/** More xz seeds from the system `xz`, when there is one: other checks, several blocks. */
function xzSeeds(): Uint8Array[] {
  const seeds = [new Uint8Array(SAMPLE_XZ)];
  if (spawnSync('xz', ['--version']).status !== 0) return seeds;
  const data = Buffer.from(Array.from({ length: 6000 }, (_, i) => (i * 31 + (i >> 5)) & 0xff));
  for (const args of [['--check=crc64'], ['--check=sha256'], ['--check=none', '--block-size=1500'], ['--x86', '--lzma2=preset=0']]) {
    const r = spawnSync('xz', ['--format=xz', '-c', ...args], { input: data });
    if (r.status === 0) seeds.push(new Uint8Array(r.stdout));
  }
  return seeds;
}

const editsArb = fc.array(byteMutationArb, { minLength: 1, maxLength: 8 });
const randomBytes = fc.uint8Array({ maxLength: 1 << 16 });

/** A mutated seed or random bytes, optionally starting with a magic so the parser gets past it. */
function inputArb(seeds: readonly Uint8Array[], magic: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...seeds), editsArb).map(([s, e]) => mutateBytes(s, e)) },
    { weight: 1, arbitrary: randomBytes },
    { weight: 1, arbitrary: randomBytes.map((r) => Uint8Array.from([...magic, ...r])) },
  );
}

test('ELF: parseElf64 and the module builder give a typed error or a valid image', async (t) => {
  const seeds = [synth, ...(crc7 ? [crc7] : [])];
  const elfMagic = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0);
  let parsed = 0;
  const prop = fc.property(inputArb(seeds, elfMagic), (bytes) => {
    const r = noThrowNoHang('parseElf64', bytes.length, () => parseElf64(bytes));
    if (!r.ok) return isTypedError(r.error) && r.error.message.startsWith('ELF: ');
    parsed++;
    // A valid image must be safe to use: every section's bytes, and the module build on top.
    for (const s of r.value.sections) r.value.sectionBytes(s);
    const built = noThrowNoHang('buildModuleImage', bytes.length, () =>
      buildModuleImage(bytes, { base: 0xffff_ffff_c000_0000n, initBase: 0xffff_ffff_c100_0000n, fentry: SYNTH_FENTRY, resolve: synthResolve }),
    );
    return built.ok || isTypedError(built.error);
  });
  await checkProperty(t, 'ELF', prop, scaledRuns(3000));
  t.log(`${parsed} inputs parsed as ELF`);
});

test('module signature trailers: the parser and the verifier (Ed25519 and PKCS#7) never throw', async (t) => {
  const seeds = [signedSynth, ...(crc7 ? [crc7] : [])];
  const verdicts = new Map<string, number>();
  const prop = fc.property(
    fc.oneof(
      { weight: 6, arbitrary: inputArb(seeds, new Uint8Array()) },
      // Edits aimed at the trailer: the last 12 + 28 bytes and the signature before them.
      {
        weight: 4,
        arbitrary: fc
          .tuple(
            fc.constantFrom(...seeds),
            fc.array(
              byteMutationArb.map((m) => ('at' in m ? { ...m, at: 0.9 + m.at * 0.1 } : m)),
              { minLength: 1, maxLength: 4 },
            ),
          )
          .map(([s, e]) => mutateBytes(s, e)),
      },
      { weight: 1, arbitrary: randomBytes.map((r) => Uint8Array.from([...r, ...MODULE_SIG_MARKER])) },
    ),
    (bytes) => {
      const p = noThrowNoHang('parseModuleSignature', bytes.length, () => parseModuleSignature(bytes));
      if (!p.ok && !isTypedError(p.error)) return false;
      const s = noThrowNoHang('stripModuleSignature', bytes.length, () => stripModuleSignature(bytes));
      if (!s.ok && !isTypedError(s.error)) return false;
      const v = noThrowNoHang('verifyModuleSignature', bytes.length, () => verifyModuleSignature(bytes, keyring));
      const key = `${v.scheme} ${v.accepted ? 'accepted' : 'denied'}`;
      verdicts.set(key, (verdicts.get(key) ?? 0) + 1);
      // An accepted mutation must still carry exactly the signed ELF (edits outside it only).
      if (v.accepted) return v.elf !== undefined && seeds.some((seed) => Buffer.from(seed).includes(Buffer.from(v.elf!)));
      return typeof v.reason === 'string' && v.reason.length > 0;
    },
  );
  await checkProperty(t, 'module signature', prop, scaledRuns(2000));
  t.log(`verdicts: ${[...verdicts].map(([k, n]) => `${k}: ${n}`).join(', ')}`);
});

test('xz streams: xzDecompress gives a typed error or bytes within the output limit', async (t) => {
  const seeds = xzSeeds();
  const LIMIT = 1 << 20;
  let decoded = 0;
  const prop = fc.property(inputArb(seeds, Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)), (bytes) => {
    const r = noThrowNoHang('xzDecompress', bytes.length, () => xzDecompress(bytes, { maxOutput: LIMIT }));
    if (r.ok) decoded++;
    return r.ok ? r.value.length <= LIMIT : isTypedError(r.error) && typeof r.error.kind === 'string';
  });
  await checkProperty(t, 'xz', prop, scaledRuns(1500));
  t.log(`${seeds.length} seeds; ${decoded} inputs decoded`);
});
