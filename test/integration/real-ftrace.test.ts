/**
 * ftrace on the real kernel: every live site on and off again through the authenticated
 * path; a module's sites can be patched only once the module is verified.
 */
import { gva } from '../../shared/addr.ts';
import test from 'ava';
import { join } from 'node:path';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { disposeForkBases, forkRealMachine } from '../helpers/real-machine.ts';
import { NOP5, decodePatchInsn } from '../../shared/x86/patch-encodings.ts';
import { PROT } from '../../guest/mm/kernel-mm.ts';

const realTest = needsFixtures(test);
// Each test works on its own fork of one booted machine (none tests boot itself).
test.after.always(disposeForkBases);

realTest('ftrace on every live site and off again: each site holds the call, then the NOP', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  t.is((await m.loadModule(join(fixtures.modulesDir, 'virtio_ring.ko'))).outcome, 'allowed');
  const k = m.kernel!;
  const trampoline = m.image.systemMap.address('ftrace_caller')!;
  const sites = k.ftrace.select('all').map((s) => s.address);
  t.is(sites.length, 38_252 + 57, ".text sites plus virtio_ring's 57");

  const on = await m.ftrace('enable', 'all');
  t.is(on.outcome, 'allowed', on.reason);
  t.true(
    sites.every((a) => {
      const r = k.cpu.read(gva(a), 5);
      if (!r.ok) return false;
      const insn = decodePatchInsn(a, r.value);
      return insn.kind === 'call32' && insn.target === trampoline;
    }),
    'every site calls ftrace_caller',
  );
  const off = await m.ftrace('disable', 'all');
  t.is(off.outcome, 'allowed', off.reason);
  t.true(
    sites.every((a) => {
      const r = k.cpu.read(gva(a), 5);
      return r.ok && r.value.every((b, i) => b === NOP5[i]);
    }),
  );
  const batches = m.audit.records().filter((r) => r['kind'] === 'text-patch');
  t.is(batches.length, 2, 'one verified batch each way');
  t.true(batches.every((r) => r['ok'] === true && r['patches'] === sites.length));
});

realTest("a module's ftrace sites patch only after the module is verified", async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const k = m.kernel!;
  // Unverified code: the attacker writes a function with an mcount NOP into its own pages.
  const mem = await k.mm.vmalloc(1, PROT.RW, 'modules');
  t.true(mem.ok);
  if (!mem.ok) return;
  t.true(k.cpu.write(gva(mem.value.va), Uint8Array.from(NOP5)).ok);
  const early = await m.textPoke(`0x${mem.value.va.toString(16)}`, Uint8Array.of(0xe8, 0, 0, 0, 0), 'ftrace');
  t.is(early.outcome, 'denied');
  const record = m.audit.records().at(-1)!;
  t.regex(String(record['reason']), /not in verified kernel or module text/);

  t.is((await m.loadModule(join(fixtures.modulesDir, 'cordic.ko'))).outcome, 'allowed');
  const r = await m.ftrace('enable', '* [cordic]');
  t.is(r.outcome, 'allowed', r.reason);
  t.is(r.detail?.['patched'], 1, 'cordic has one ftrace site');
});
