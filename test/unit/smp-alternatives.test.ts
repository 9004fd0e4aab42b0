/**
 * The guest's alternatives_enable_smp() (guest/patching/smp-alternatives.ts), on bytes set up
 * as a UP-patched boot leaves them: only remembered `.smp_locks` sites that hold `3e` are
 * restored, in one `smp-lock` batch; nothing happens when boot kept the lock prefixes.
 */
import test from 'ava';
import { CORE_KERNEL, SmpAlternatives } from '../../guest/patching/smp-alternatives.ts';
import type { PatchRequest } from '../../shared/heki-descriptors.ts';

function setup(refuse = false) {
  const mem = new Map<bigint, number>([
    [0x1000n, 0x3e],
    [0x1010n, 0xf0], // a prefix boot did not strip (e.g. outside the text it patched)
    [0x2000n, 0x3e],
  ]);
  const batches: PatchRequest[][] = [];
  const smp = new SmpAlternatives(
    async (patches) => {
      batches.push([...patches]);
      if (refuse) return { ok: false, reason: 'text patch refused: EPERM', denied: [0], applied: 0 };
      for (const p of patches) mem.set(p.site, p.newBytes[0]!);
      return { ok: true, patches: patches.length, batches: 1 };
    },
    (va) => mem.get(va),
  );
  smp.add(CORE_KERNEL, [0x1000n, 0x1010n]);
  smp.add('kvm', [0x2000n]);
  return { smp, mem, batches };
}

test('boot kept the lock prefixes: enableSmp patches nothing', async (t) => {
  const { smp, batches } = setup();
  const r = await smp.enableSmp();
  t.deepEqual(r, { ok: true, restored: 0, batches: 0, uniprocPatched: false });
  t.is(batches.length, 0);
});

test('after a UP boot, every remembered 3e of the kernel and the modules becomes f0 in one smp-lock batch, once', async (t) => {
  const { smp, mem, batches } = setup();
  smp.markUniprocPatched();
  const r = await smp.enableSmp();
  t.deepEqual(r, { ok: true, restored: 2, batches: 1, uniprocPatched: true });
  t.is(batches.length, 1);
  t.deepEqual(
    batches[0]!.map((p) => [p.kind, p.site, p.oldBytes[0], p.newBytes[0]]),
    [
      ['smp-lock', 0x1000n, 0x3e, 0xf0],
      ['smp-lock', 0x2000n, 0x3e, 0xf0],
    ],
  );
  t.is(mem.get(0x1000n), 0xf0);
  t.false(smp.uniprocPatched);
  t.is((await smp.enableSmp()).ok && batches.length, 1, 'a second CPU later patches nothing');
});

test('an unloaded module is forgotten; a refused batch leaves the kernel UP-patched', async (t) => {
  const { smp, batches } = setup(true);
  smp.markUniprocPatched();
  smp.remove('kvm');
  const r = await smp.enableSmp();
  t.false(r.ok);
  t.deepEqual(
    batches[0]!.map((p) => p.site),
    [0x1000n],
  );
  t.true(smp.uniprocPatched);
});
