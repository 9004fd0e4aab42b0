/**
 * The host side's observer hooks (hypervisor/observe/): the events a watcher gets (hypercalls
 * with their return value, VM exits, EPT updates coalesced into runs, verifier requests and
 * their verdicts under one sequence number), and that a watcher which throws changes nothing
 * the VM does.
 */
import { gfn, gpa, gva } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, PTE, bootSynthetic, lockSyntheticKernel, protect, type SyntheticMachine } from '../helpers/synthetic-machine.ts';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { encodePatchBatch } from '../../shared/heki-descriptors.ts';
import { PROTOCOL_VERSION, type Verdict } from '../../shared/protocol.ts';
import type { VerifierPort } from '../../hypervisor/core/auth/authenticator.ts';
import { AuditLog } from '../../hypervisor/audit/audit-log.ts';
import { EPT_DEFAULT, EPT_R, EPT_W } from '../../hypervisor/ept/permissions.ts';
import { Ept } from '../../hypervisor/ept/ept.ts';
import { EptRuns } from '../../hypervisor/observe/ept-runs.ts';
import { observePort } from '../../hypervisor/observe/observed-port.ts';
import type { EptUpdateEvent, VmObserver } from '../../hypervisor/observe/vm-observer.ts';

const DESC = 0x90_0000n;

/** An observer that keeps every event, tagged with its method's name. */
function recorder(): { observer: VmObserver; events: Array<{ type: string; e: any }> } {
  const events: Array<{ type: string; e: any }> = [];
  const keep = (type: string) => (e: unknown) => void events.push({ type, e });
  return {
    events,
    observer: {
      hypercall: keep('hypercall'),
      exit: keep('exit'),
      eptUpdate: keep('eptUpdate'),
      verifierRequest: keep('verifierRequest'),
      verdict: keep('verdict'),
      reset: keep('reset'),
      verifierStarted: keep('verifierStarted'),
    },
  };
}

/** An observer whose every method throws. */
const throwing: VmObserver = Object.fromEntries(
  ['hypercall', 'exit', 'eptUpdate', 'verifierRequest', 'verdict', 'reset', 'verifierStarted'].map((k) => [
    k,
    () => {
      throw new Error(`observer ${k} is broken`);
    },
  ]),
);

/** A stub verifier that allows text patches (item by item) and counts what it saw. */
function stubPort(options: { records?: boolean; fail?: boolean } = {}): VerifierPort {
  let id = 0;
  const allow = (items: number): Verdict => ({
    v: PROTOCOL_VERSION,
    id: ++id,
    ok: true,
    reason: 'ok',
    plugins: ['stub'],
    items: Array.from({ length: items }, () => ({ ok: true, reason: 'ok' })),
  });
  return {
    async verify(r) {
      if (options.fail) throw new Error('worker gone');
      return allow(r.kind === 'text-patch' ? r.items.length : 0);
    },
    ...(options.records ? { verifyPatches: async (r: { records: { count: number } }) => allow(r.records.count) } : {}),
  };
}

/** Boots a synthetic VM watched by `observer`, locks it, patches one ftrace site, and tries to write locked text. */
async function scenario(
  observer: VmObserver | undefined,
  port: VerifierPort,
): Promise<{ m: SyntheticMachine; audit: AuditLog; rets: number[]; write: boolean }> {
  const m = bootSynthetic(observer ? { observer } : {});
  const audit = AuditLog.inMemory();
  m.vmm.core.attachVerifier({
    vm: 'vm0',
    audit,
    kernelRegions: [{ name: '.text', vaddr: m.kva(LAYOUT.text), paddr: LAYOUT.text, size: 4096 }],
    port: observer ? observePort(port, observer, { before: () => m.vmm.core.events?.flushEpt() }) : port,
  });
  const rets: number[] = [];
  rets.push(await lockSyntheticKernel(m));
  // 16 data pages at once: one EPT run.
  rets.push(await protect(m, [{ pa: 0x100_0000n, epa: 0x101_0000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE }]));
  const batch = encodePatchBatch([
    { kind: 'ftrace', site: m.kva(LAYOUT.text), oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00), newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4) },
  ]);
  m.vmm.core.memory.write(gpa(DESC), batch);
  rets.push(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, DESC));
  rets.push(await m.cpu.vmcall(999));
  // A writable alias of locked rodata: the page tables allow the write, the EPT refuses it.
  const alias = 0xffff_c900_0000_0000n;
  m.pt.map(alias, LAYOUT.rodata, PTE.RW | PTE.NX);
  const write = m.cpu.write(gva(alias), Uint8Array.of(0xcc)).ok;
  m.vmm.reset({ clearMemory: false, why: 'test reboot' });
  return { m, audit, rets, write };
}

test('a watcher gets hypercalls with their return value, exits, coalesced EPT runs and verdicts under their request seq', async (t) => {
  const { observer, events } = recorder();
  const { rets } = await scenario(observer, stubPort());
  t.deepEqual(rets, [0, 0, 0, -KVM_STATUS.KVM_ENOSYS]);

  const hcs = events.filter((x) => x.type === 'hypercall').map((x) => x.e);
  t.deepEqual(
    hcs.map((e) => [e.vcpu, e.nr, e.ret]),
    [
      [0, HC.PROTECT_MEMORY, 0],
      [0, HC.PROTECT_MEMORY, 0],
      [0, HC.HEKI_TEXT_PATCH, 0],
      [0, 999, -KVM_STATUS.KVM_ENOSYS],
    ],
  );
  t.deepEqual(hcs[2].args, [DESC, 0n, 0n, 0n]);
  t.true(hcs.every((e) => e.end >= e.start));

  // The 16 pages set to RW in one hypercall are one event, not 16.
  const ept = events.filter((x) => x.type === 'eptUpdate').map((x) => x.e as EptUpdateEvent);
  const run = ept.find((e) => e.first === 0x1000);
  t.like(run, { first: 0x1000, count: 16, perms: EPT_R | EPT_W });
  const inSecond = hcs[1];
  t.true(run!.time >= inSecond.start && run!.time <= inSecond.end, 'the run happened during its hypercall');
  // The run is reported before the hypercall that made it ends.
  const runAt = events.findIndex((x) => x.type === 'eptUpdate' && x.e === run);
  const hcAt = events.findIndex((x) => x.type === 'hypercall' && x.e === inSecond);
  t.true(runAt < hcAt);

  const req = events.find((x) => x.type === 'verifierRequest')!.e;
  const verdict = events.find((x) => x.type === 'verdict')!.e;
  t.like(req, { seq: 0, vm: 'vm0', kind: 'text-patch', items: 1 });
  t.is(req.request().kind, 'text-patch');
  t.like(verdict, { seq: 0, kind: 'text-patch', verdict: { ok: true } });
  t.true(verdict.end >= verdict.start);

  const exits = events.filter((x) => x.type === 'exit').map((x) => x.e);
  const violation = exits.find((e) => e.exit.reason === 'ept-violation');
  t.like(violation, { vcpu: 0, action: 'inject' });

  const reset = events.find((x) => x.type === 'reset')!.e;
  t.like(reset, { vm: 'vm0', why: 'test reboot' });
  // After the reset, every frame is back to the default: one event for all of them.
  const last = ept[ept.length - 1]!;
  t.like(last, { first: 0, perms: EPT_DEFAULT });
});

test('a batch in record form is counted without building its items; they are built on request', async (t) => {
  const { observer, events } = recorder();
  await scenario(observer, stubPort({ records: true }));
  const req = events.find((x) => x.type === 'verifierRequest')!.e;
  t.like(req, { seq: 0, kind: 'text-patch', items: 1 });
  const built = req.request();
  t.is(built.items.length, 1);
  t.is(req.request(), built, 'built once');
  t.like(events.find((x) => x.type === 'verdict')!.e, { seq: 0, verdict: { ok: true } });
});

test('a verifier that fails is reported as the denial the core took', async (t) => {
  const { observer, events } = recorder();
  const { rets } = await scenario(observer, stubPort({ fail: true }));
  t.is(rets[2], -KVM_STATUS.KVM_EPERM);
  const v = events.find((x) => x.type === 'verdict')!.e;
  t.like(v, { seq: 0, kind: 'text-patch', verdict: { ok: false, reason: 'verifier unavailable: worker gone' } });
});

test('a watcher that throws changes nothing the VM does', async (t) => {
  const plain = await scenario(undefined, stubPort());
  const watched = await scenario(throwing, stubPort());
  t.deepEqual(watched.rets, plain.rets);
  t.is(watched.write, plain.write);
  t.false(watched.write);
  const strip = (a: AuditLog) => a.records().map((r) => ({ kind: r['kind'], ok: r['ok'], reason: r['reason'], applied: r['applied'] }));
  t.deepEqual(strip(watched.audit), strip(plain.audit));
  t.deepEqual(watched.m.vmm.core.ept.entries(), plain.m.vmm.core.ept.entries());
  t.deepEqual(
    watched.m.vmm.log.exits().map((e) => [e.exit.reason, e.action]),
    plain.m.vmm.log.exits().map((e) => [e.exit.reason, e.action]),
  );
  t.deepEqual([...watched.m.vmm.core.memory.read(gpa(LAYOUT.text), 5)], [...plain.m.vmm.core.memory.read(gpa(LAYOUT.text), 5)]);
});

test('EPT runs: contiguous frames with equal permissions coalesce; a gap or other permissions starts a new run', (t) => {
  const got: EptUpdateEvent[] = [];
  const ept = new Ept(4096);
  ept.watch(new EptRuns((e) => got.push(e)));
  ept.setRange(gfn(10), 100, EPT_R);
  ept.set(gfn(110), EPT_R);
  ept.set(gfn(111), EPT_R | EPT_W);
  ept.set(gfn(200), EPT_R | EPT_W);
  ept.reset();
  t.deepEqual(
    got.map((e) => [e.first, e.count, e.perms]),
    [
      [10, 101, EPT_R],
      [111, 1, EPT_R | EPT_W],
      [200, 1, EPT_R | EPT_W],
      [0, 4096, EPT_DEFAULT],
    ],
  );
  // Unwatched: nothing more is reported.
  ept.watch(undefined);
  ept.set(gfn(5), EPT_R);
  t.is(got.length, 4);
});
