/**
 * The smp-lock plugin (verifier-vm/plugins/smp-lock.ts) and the VM configuration it reads
 * (verifier-vm/vm-config.ts): a lock-prefix restore (3e -> f0) is allowed only at a signed
 * `.smp_locks` site and only after the VMM raised the CPU count; the count and the CPU model
 * come from the VMM (WorkerInit `vms`), checked, and survive a VM reset.
 */
import test from 'ava';
import { patchItem, pluginTestVerifier, syntheticManifestBody, SYNTHETIC } from '../../tools/plugin-testing.ts';
import { buildVerifier } from '../../verifier-vm/verifier-setup.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { BUILTIN_CPU_MODELS, DEFAULT_CPU_MODEL } from '../../shared/x86/cpu-models-builtin.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { MOD, syntheticModule } from './plugin-synthetic.ts';

const LOCK = SYNTHETIC.text + 0x500n;
const NOT_LOCK = SYNTHETIC.text + 0x501n;
const hex = (v: bigint): string => v.toString(16);
const upSmp = { ...BUILTIN_CPU_MODELS.get('qemu64-up')!, name: 'up-2', possibleCpus: 2 };

function verifier(online?: number): Verifier {
  const body = { ...syntheticManifestBody(), smpLocks: [hex(LOCK)] };
  return pluginTestVerifier({ manifest: body, vms: { vm0: { cpuModel: upSmp, ...(online !== undefined ? { onlineCpus: online } : {}) } } }).engine;
}

const restore = (site: bigint, cur = 0x3e, neu = 0xf0, old = cur) => patchItem('smp-lock', site, Uint8Array.of(old), Uint8Array.of(neu), Uint8Array.of(cur));
const send = (e: Verifier, items: ReturnType<typeof restore>[]) => e.verify({ v: 1, id: 1, vm: 'vm0', kind: 'text-patch', items });

test('attack: a lock-prefix restore before the VMM raised the CPU count is denied, naming the site', (t) => {
  const e = verifier();
  t.is(e.vmState('vm0').onlineCpus, 1);
  const r = send(e, [restore(LOCK)]);
  t.false(r.ok);
  t.regex(r.reason, new RegExp(`smp_locks site 0x${hex(LOCK)} \\(kernel\\) before the VMM brought a second CPU online \\(1 online\\)`));
});

test('after the VMM raised the count, 3e -> f0 at a .smp_locks site is allowed; every other form is denied', (t) => {
  const e = verifier();
  t.is(e.setOnlineCpus('vm0', 2), undefined);
  t.true(send(e, [restore(LOCK)]).ok);
  const cases: Array<[ReturnType<typeof restore>, RegExp]> = [
    [restore(NOT_LOCK), new RegExp(`0x${hex(NOT_LOCK)} is not a lock-prefix site`)],
    [restore(LOCK, 0xf0, 0x3e), /f0 -> 3e is not the UP-to-SMP restore 3e -> f0/],
    [restore(LOCK, 0x3e, 0x90), /3e -> 90 is not the UP-to-SMP restore/],
    [restore(LOCK, 0xf0, 0xf0, 0x3e), /old byte 3e differs from memory f0/],
    [patchItem('smp-lock', LOCK, Uint8Array.of(0x3e, 0x90), Uint8Array.of(0xf0, 0x90), Uint8Array.of(0x3e, 0x90)), /is 2 bytes; a lock prefix is 1/],
  ];
  for (const [item, re] of cases) {
    const r = send(e, [item]);
    t.false(r.ok);
    t.regex(r.reason, re);
  }
});

test('the online count comes only from the VMM: bounded by the model, never lowered, kept across a VM reset', (t) => {
  const e = verifier();
  t.regex(e.setOnlineCpus('vm0', 3) ?? '', /3 CPUs online is not an integer from the model's 1 present to its 2 possible CPUs/);
  t.is(e.setOnlineCpus('vm0', 2), undefined);
  t.regex(e.setOnlineCpus('vm0', 1) ?? '', /fewer than the 2 already online/);
  e.resetVm('vm0');
  t.is(e.vmState('vm0').onlineCpus, 2);
  t.is(e.vmState('vm0').cpuModel.name, 'up-2');
});

test('ctx.vm.cpuModel is the VMM-given model, frozen; a VM the VMM did not describe gets the default model', (t) => {
  const e = verifier(2);
  const m = e.vmState('vm0').cpuModel;
  t.deepEqual(m, upSmp);
  t.true(Object.isFrozen(m) && Object.isFrozen(m.capabilities));
  t.is(e.vmState('vm0').onlineCpus, 2);
  t.is(e.vmState('other').cpuModel, DEFAULT_CPU_MODEL);
});

test('the worker refuses a malformed VM configuration, naming the VM and the field', (t) => {
  const init = { keyring: { ed25519: [], certificates: [], revoked: { ed25519KeyIds: [], x509Sha256: [] } } };
  const bad: Array<[unknown, RegExp]> = [
    [[], /vms must map VM names/],
    [{ vm0: 5 }, /vms\.vm0 is not an object/],
    [{ vm0: { cpuModel: { ...upSmp, capabilities: [1] } } }, /vms\.vm0\.cpuModel: CPU model up-2: capabilities must be 24/],
    [{ vm0: { cpuModel: upSmp, onlineCpus: 0 } }, /vms\.vm0\.onlineCpus: 0 CPUs online/],
  ];
  for (const [vms, re] of bad) {
    const r = buildVerifier({ ...init, vms: vms as never }, BUILTIN_PLUGINS);
    t.false(r.ok);
    if (!r.ok) t.regex(r.error, re);
  }
  t.true(buildVerifier({ ...init, vms: { vm0: { cpuModel: upSmp } } }, BUILTIN_PLUGINS).ok);
});

test("a verified module's .smp_locks sites are restorable too, named by module; another module's record without them allows none", (t) => {
  const e = verifier(2);
  const lock = MOD.text + 0x80n;
  e.vmState('vm0').modules.set('synth', { ...syntheticModule('synth'), smpLocks: new Set([lock]) });
  const r = send(e, [restore(lock)]);
  t.true(r.ok, r.reason);
  t.regex(r.items![0]!.reason, new RegExp(`\\.smp_locks site 0x${hex(lock)} \\(module synth\\) -> lock prefix`));
  e.vmState('vm0').modules.set('synth', syntheticModule('synth'));
  t.false(send(e, [restore(lock)]).ok);
});
