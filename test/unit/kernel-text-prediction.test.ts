/**
 * The verifier's end-of-boot prediction (verifier-vm/end-state/kernel-text-prediction.ts):
 * from the signed manifest and the VMM's CPU model it accepts exactly the text Linux 6.1
 * writes on that model, and names the site and its table for a text a guest patched
 * otherwise: another model's text, an alternative left unapplied, a return thunk turned into
 * `ret`, lock prefixes stripped on an SMP guest, a paravirt or static-call site pointed
 * elsewhere, a byte changed outside every touch-up site.
 */
import test from 'ava';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { vmlinuxTextSpace, vmlinuxTouchupContext, vmlinuxTouchupTables } from '../../shared/kernel-image/touchup-tables.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { alternativeApplies } from '../../shared/x86/touchups/alternatives.ts';
import { applyBootTouchups } from '../../shared/x86/touchups/boot-touchups.ts';
import { buildManifestBody } from '../../tools/manifest-builder.ts';
import { indexManifest, type KernelManifest } from '../../verifier-vm/manifest.ts';
import { checkPredictedText } from '../../verifier-vm/end-state/kernel-text-prediction.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);
const model = (n: string): CpuModel => BUILTIN_CPU_MODELS.get(n)!;

let cached: { image: KernelImage; manifest: KernelManifest } | undefined;
async function setup(): Promise<{ image: KernelImage; manifest: KernelManifest }> {
  if (!cached) {
    const image = await loadFixtureKernel();
    cached = { image, manifest: indexManifest(buildManifestBody(image, { kernel: 'linux-6.1.0-56-amd64', vmlinuzSha256: '0'.repeat(64) }), '0'.repeat(16)) };
  }
  return cached;
}

/** The text the guest's boot leaves on `m`. */
function bootedText(image: KernelImage, m: CpuModel): Uint8Array {
  const space = vmlinuxTextSpace(image);
  const b = image.boundaries;
  applyBootTouchups(
    space,
    vmlinuxTouchupTables(image),
    { sites: image.mcountSites.map((s) => s.address), fentry: b.__fentry__ },
    { start: b._stext, end: b._etext },
    vmlinuxTouchupContext(image, m),
  );
  return Uint8Array.from(space.locate(b._stext)!.region.bytes);
}

const off = (image: KernelImage, va: bigint): number => Number(va - image.boundaries._stext);

fixtureTest('the text Linux writes on each shipped model is accepted for that model', async (t) => {
  const { image, manifest } = await setup();
  for (const name of BUILTIN_CPU_MODELS.keys()) {
    const r = checkPredictedText(manifest, model(name), image.boundaries._stext, bootedText(image, model(name)));
    t.true(r.ok, `${name}: ${r.ok ? '' : r.error}`);
  }
});

fixtureTest('text another CPU model would produce is denied, naming the site and the table', async (t) => {
  const { image, manifest } = await setup();
  const r = checkPredictedText(manifest, model('epyc-smp2'), image.boundaries._stext, bootedText(image, model('skylake-smp2')));
  t.false(r.ok);
  if (!r.ok) t.regex(r.error, /on CPU model epyc-smp2 in \d+ bytes; the first at 0xffffffff81[0-9a-f]+, \w[\w-]* site 0xffffffff81[0-9a-f]+ \(\.[a-z_]+\)/);
  const up = checkPredictedText(manifest, model('qemu64-up'), image.boundaries._stext, bootedText(image, model('epyc-smp2')));
  t.false(up.ok, 'SMP lock prefixes on a one-CPU model');
});

fixtureTest('attack: a return thunk turned into ret on a model whose words ask for the thunk is denied at its .return_sites entry', async (t) => {
  const { image, manifest } = await setup();
  const m = model('epyc-smp2');
  const text = bootedText(image, m);
  const site = vmlinuxTouchupTables(image).returns.find((a) => a >= image.boundaries._stext && a < image.boundaries._etext && text[off(image, a)] === 0xe9)!;
  text.set([0xc3, 0xcc, 0xcc, 0xcc, 0xcc], off(image, site));
  const r = checkPredictedText(manifest, m, image.boundaries._stext, text);
  t.false(r.ok);
  if (!r.ok) t.true(r.error.includes(`return site 0x${site.toString(16)} (.return_sites)`), r.error);
});

fixtureTest('attack: lock prefixes stripped on an SMP guest are denied at their .smp_locks entry', async (t) => {
  const { image, manifest } = await setup();
  const m = model('skylake-smp2');
  const text = bootedText(image, m);
  const site = vmlinuxTouchupTables(image).smpLocks.find((a) => a >= image.boundaries._stext && a < image.boundaries._etext && text[off(image, a)] === 0xf0)!;
  text[off(image, site)] = 0x3e;
  const r = checkPredictedText(manifest, m, image.boundaries._stext, text);
  t.false(r.ok);
  if (!r.ok) t.true(r.error.includes(`smp-lock site 0x${site.toString(16)} (.smp_locks)`), r.error);
});

fixtureTest('attack: a mitigation alternative left unapplied is denied at its .altinstructions entry', async (t) => {
  const { image, manifest } = await setup();
  const m = model('skylake-smp2');
  const text = bootedText(image, m);
  const tables = vmlinuxTouchupTables(image);
  const ctx = vmlinuxTouchupContext(image, m);
  const file = image.sectionByName('.text')!.bytes;
  // An applied alternative whose site the touch-ups changed: put the file's bytes back.
  const a = tables.alternatives.find(
    (x) =>
      x.instr >= image.boundaries._stext &&
      x.instr < image.boundaries._etext &&
      alternativeApplies(ctx, x) &&
      x.replacementlen > 0 &&
      text[off(image, x.instr)] !== file[off(image, x.instr)],
  )!;
  text.set(file.subarray(off(image, a.instr), off(image, a.instr) + a.instrlen), off(image, a.instr));
  const r = checkPredictedText(manifest, m, image.boundaries._stext, text);
  t.false(r.ok);
  if (!r.ok) t.true(r.error.includes(`alternative site 0x${a.instr.toString(16)} (.altinstructions)`), r.error);
});

fixtureTest('attack: a paravirt site and an inline static-call site pointed at attacker code during boot are denied, each at its table', async (t) => {
  const { image, manifest } = await setup();
  const m = model('skylake-smp2');
  const tables = vmlinuxTouchupTables(image);
  const attacker = image.boundaries._stext + 0x100000n;
  const rel = (site: bigint): number[] => {
    const v = Number(BigInt.asIntN(32, attacker - (site + 5n)));
    return [0xe8, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
  };
  const pv = tables.paravirt.find((p) => p.addr >= image.boundaries._stext && p.addr < image.boundaries._etext && p.len >= 5)!;
  const t1 = bootedText(image, m);
  t1.set(rel(pv.addr), off(image, pv.addr));
  const r1 = checkPredictedText(manifest, m, image.boundaries._stext, t1);
  t.false(r1.ok);
  if (!r1.ok) t.true(r1.error.includes(`paravirt site 0x${pv.addr.toString(16)} (.parainstructions)`), r1.error);
  const sc = tables.staticCalls.find((s) => !s.tail && s.site >= image.boundaries._stext && s.site < image.boundaries._etext)!;
  const t2 = bootedText(image, m);
  t2.set(rel(sc.site), off(image, sc.site));
  const r2 = checkPredictedText(manifest, m, image.boundaries._stext, t2);
  t.false(r2.ok);
  if (!r2.ok) t.true(r2.error.includes(`static-call site 0x${sc.site.toString(16)} (.static_call_sites)`), r2.error);
});

fixtureTest('a byte changed outside every touch-up site is denied, naming its page', async (t) => {
  const { image, manifest } = await setup();
  const m = model('qemu64-up');
  const text = bootedText(image, m);
  // _stext + 0x2000 lies in no touch-up site of the fixture.
  const at = 0x2000;
  text[at] = text[at]! ^ 0xff;
  const r = checkPredictedText(manifest, m, image.boundaries._stext, text);
  t.false(r.ok);
  if (!r.ok) t.is(r.error, `.text page 0x${(image.boundaries._stext + 0x2000n).toString(16)} differs from the signed kernel file outside every touch-up site`);
});
