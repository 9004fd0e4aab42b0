/**
 * The guest's operations say who stopped them as data (guest/heki/refusal.ts), and the
 * machine's outcome follows that data: a request the hypervisor refused is `denied` with the
 * status it returned; a failure of the guest's own (a missing dependency, an unmapped page)
 * is `error` and carries no status. `heki run` reports and exit codes rest on this split.
 */
import test, { type TestFn } from 'ava';
import { readFileSync } from 'node:fs';
import { KVM_STATUS, statusName } from '../../shared/abi.ts';
import { stripModuleSignature } from '../../shared/module-signature.ts';
import { PROT } from '../../guest/mm/kernel-mm.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);

realTest('an unsigned module, an unsigned BPF image and set_memory_x are refusals with the hypercall status; a guest failure is not', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const k = m.kernel!;

  // The attack: crc7.ko without its signature trailer. Stop: the verifier denies, -KVM_EPERM.
  const stripped = stripModuleSignature(new Uint8Array(readFileSync(`${fixtures.modulesDir}/crc7.ko`)));
  if (!stripped.ok) throw new Error(stripped.error.message);
  const unsigned = await k.modules.load(Uint8Array.from(stripped.value));
  t.like(unsigned, { ok: false, error: { kind: 'refused', refusal: { status: -KVM_STATUS.KVM_EPERM, name: '-KVM_EPERM' } } });

  // A module whose dependency is not loaded: the guest's loader gives up before asking.
  const needy = await k.modules.load(new Uint8Array(readFileSync(`${fixtures.modulesDir}/virtio_net.ko`)));
  t.like(needy, { ok: false, error: { kind: 'failed' } });
  t.false(!needy.ok && 'refusal' in needy.error, 'a guest failure carries no status');

  // The attack: an unsigned JIT image. Stop: the code-image check refuses it.
  const bpf = await k.bpf.load('unsigned', Uint8Array.of(0xc3), undefined);
  t.like(bpf, { ok: false, error: { kind: 'refused', refusal: { status: -KVM_STATUS.KVM_EPERM } } });
  t.is((await m.bpfJit('unsigned2', Uint8Array.of(0xc3), false)).outcome, 'denied');

  // The attack: set_memory_x on a fresh data page made read-only first. Stop: the hypervisor
  // refuses the widening and says so with its status.
  const page = await k.mm.vmalloc(1, PROT.RW);
  if (!page.ok) throw new Error(page.reason);
  t.true((await k.mm.setMemory(page.value.va, 1, 'ro')).ok, 'narrowing is allowed');
  const x = await k.mm.setMemory(page.value.va, 1, 'x');
  if (x.ok || !x.refused) return t.fail(`set_memory_x was not refused by the hypervisor: ${x.ok ? 'ok' : x.reason}`);
  t.true(x.refused.status < 0);
  t.is(x.refused.name, statusName(x.refused.status));
  t.true(x.reason.endsWith(`the hypervisor refused (${x.refused.name})`), x.reason);
  // set_memory on a page nothing maps: the guest's own failure, no status.
  const unmapped = await k.mm.setMemory(page.value.va + 0x10_0000_0000n, 1, 'ro');
  t.false(unmapped.ok);
  t.is(!unmapped.ok ? unmapped.refused : 'ok', undefined);
  t.is((await m.setMemory(`0x${(page.value.va + 0x10_0000_0000n).toString(16)}`, 1, 'ro')).outcome, 'error');
  t.is((await m.setMemory(`0x${page.value.va.toString(16)}`, 1, 'x')).outcome, 'denied');

  // The machine's outcomes follow the same data for modules.
  t.is((await m.loadModule(`${fixtures.modulesDir}/crc7.ko`)).outcome, 'allowed');
  t.is((await m.unloadModule('no_such_module')).outcome, 'error');
});
