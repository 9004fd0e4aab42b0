/**
 * Module loads against the real kernel: each module of the reference boots, linked at the
 * addresses the real kernel gave its sections and touched up as load_module() does for the
 * model (module_finalize(), sorted tables, sites set to their keys' state), must hold in every
 * dumped section exactly the bytes the real kernel held after insmod. The keys' state and the
 * per-CPU pointer of a module with per-CPU data are runtime state the real kernel chose: the
 * keys are read off the reference's kernel text, the pointer off the first per-CPU reference
 * in the module's text.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyJumpSite } from '../../shared/kernel-image/jump-table.ts';
import { vmlinuxTouchupContext } from '../../shared/kernel-image/touchup-tables.ts';
import { parseModuleFile, planSections, relocateAt, type RelocatedModule } from '../../shared/module/index.ts';
import type { ModuleTouchupEnv } from '../../shared/module/module-finalize.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { returnThunkSet, trampolineFunc } from '../../shared/x86/touchups/static-call-init.ts';
import { readReferenceFolder } from '../../checks/reference/reference-folder.ts';
import { fixtureDir, fixtures, loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

for (const name of BUILTIN_CPU_MODELS.keys()) {
  fixtureTest(`${name}: every dumped section of every module the real boot loaded holds the real kernel's bytes`, async (t) => {
    const image = await loadFixtureKernel();
    const ref = readReferenceFolder(join(fixtureDir, 'reference', name));
    if (!ref.ok) return t.fail(ref.error);
    const model = BUILTIN_CPU_MODELS.get(name)!;
    const ctx = vmlinuxTouchupContext(image, model);
    const b = image.boundaries;
    const text = ref.value.text;
    const at = (site: bigint, len: number) =>
      site >= b._stext && site + BigInt(len) <= b._etext ? text.subarray(Number(site - b._stext), Number(site - b._stext) + len) : undefined;
    const keys = new Map<bigint, boolean>();
    for (const e of image.jumpEntries) {
      const x = at(e.site, e.length);
      const c = x && classifyJumpSite(e.site, x);
      if (c && !keys.has(e.key)) keys.set(e.key, (c.kind === 'jmp8' || c.kind === 'jmp32') !== ((e.flags & 1) === 1));
    }
    const thunks = returnThunkSet(ctx);
    const env: ModuleTouchupEnv = {
      ctx,
      uniprocessor: model.presentCpus === 1,
      staticKeyEnabled: (k) => keys.get(k),
      staticCallFunc: (k) => {
        const tr = ctx.symbols.staticCallTrampoline(k);
        const x = tr === undefined ? undefined : at(tr, 5);
        return x ? trampolineFunc(tr!, x, thunks) : undefined;
      },
    };
    const exports = new Map(image.exports);
    let compared = 0;
    for (const file of ref.value.loaded) {
      const mod = file.replace(/\.ko$/, '');
      const elf = parseModuleFile(new Uint8Array(readFileSync(join(fixtures.modulesDir, file))));
      if (!elf.ok) return t.fail(elf.error.message);
      const plan = planSections(elf.value);
      if (!plan.ok) return t.fail(plan.error.message);
      const secs = ref.value.sections.get(mod)!;
      // Empty sections are not in /sys/module/*/sections; they hold nothing to compare.
      const placed = plan.value.loadable.map((s) => ({ shndx: s.shndx, addr: secs.get(s.name) ?? 0n, size: s.size }));
      const link = (percpu: bigint): ReturnType<typeof relocateAt> =>
        relocateAt(
          elf.value,
          plan.value.percpu ? [...placed, { shndx: plan.value.percpu.shndx, addr: percpu, size: plan.value.percpu.size }] : placed,
          (s) => exports.get(s),
          b.__fentry__,
          mod,
          env,
        );
      let r = link(0n);
      if (!r.ok) return t.fail(`${mod}: ${r.error.message}`);
      if (plan.value.percpu) {
        // The per-CPU pointer pcpu_alloc() returned: every PC32 reference to the module's
        // per-CPU data is off by exactly that pointer at a pointer of 0.
        const tx = (r.value as RelocatedModule).sections.find((s) => s.name === '.text')!;
        const real = ref.value.dumped.get(mod)!.find((d) => d.name === '.text')!.bytes;
        const i = tx.bytes.findIndex((v, j) => v !== real[j]);
        t.true(i > 0, `${mod} has per-CPU data its text refers to`);
        const word = (bs: Uint8Array, o: number): number => new DataView(bs.buffer, bs.byteOffset).getInt32(o, true);
        // The differing byte is inside a 4-byte displacement; take the aligned start that explains it.
        let ptr: bigint | undefined;
        for (let o = Math.max(0, i - 3); o <= i && ptr === undefined; o++) {
          const d = BigInt(word(real, o)) - BigInt(word(tx.bytes, o));
          const trial = link(BigInt.asUintN(32, d));
          if (trial.ok && trial.value.sections.find((s) => s.name === '.text')!.bytes.every((v, j) => v === real[j])) ptr = BigInt.asUintN(32, d);
        }
        t.not(ptr, undefined, `${mod}: no per-CPU pointer explains the real text`);
        r = link(ptr!);
        if (!r.ok) return t.fail(r.error.message);
      }
      for (const [n, a] of r.value.exports) exports.set(n, a);
      for (const d of ref.value.dumped.get(mod) ?? []) {
        const s = r.value.sections.find((x) => x.name === d.name);
        if (!s) return t.fail(`${mod}: ${d.name} is not a section the loader places`);
        let diff = 0;
        for (let i = 0; i < d.bytes.length; i++) if (s.bytes[i] !== d.bytes[i]) diff++;
        t.is(diff, 0, `${mod} ${d.name}: ${diff} of ${d.bytes.length} bytes differ from the real kernel's`);
        compared += d.bytes.length;
      }
    }
    t.true(compared > 600_000, `compared ${compared} bytes of module sections`);
  });
}
