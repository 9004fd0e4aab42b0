/**
 * Load and backpressure: many guests share one verifier VM (one VerifierLink, one worker,
 * per-VM state keyed by VM id). The link admits at most `maxInFlight` requests at once; the
 * rest get a retryable "verifier busy" refusal at once, which the guest sees as -KVM_EAGAIN and
 * retries. Nothing is lost, nothing is answered twice, and every verdict (busy ones included)
 * has exactly one audit record, in the right VM's name.
 */
import { gfn } from '../../shared/addr.ts';
import test from 'ava';
import { VerifierLink, type OutgoingRequest } from '../../hypervisor/verifier-link/verifier-link.ts';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { VERIFIER_BUSY } from '../../shared/protocol.ts';
import { EPT_R, EPT_RWX_MASK } from '../../hypervisor/ept/permissions.ts';
import { AuditLog, type AuditRecord } from '../../hypervisor/audit/audit-log.ts';
import { PTE, bootSynthetic, type SyntheticMachine } from '../helpers/synthetic-machine.ts';
import { signedBlob, testKeyring } from '../helpers/verifier-setup.ts';

const keys = testKeyring();
const GUESTS = 6;
const VCPUS = 4;
const PAGE_BASE = 0x80_0000n;
const VA_BASE = 0xffff_c900_2000_0000n;
const R = BigInt(MEM_ATTR.READ);
const RW = BigInt(MEM_ATTR.READ | MEM_ATTR.WRITE);
const RX = BigInt(MEM_ATTR.READ | MEM_ATTR.EXEC);
/** What each vCPU asks for its own page, in order, and what the verifier must answer. */
const PLAN: ReadonlyArray<{ attr: bigint; expect: number }> = [
  { attr: R, expect: 0 }, // take W away
  { attr: RX, expect: -KVM_STATUS.KVM_EPERM }, // executable, unauthenticated: denied
  { attr: RW, expect: 0 }, // give W back (data)
  { attr: R, expect: 0 },
  { attr: RX, expect: -KVM_STATUS.KVM_EPERM },
];
const KNOWN = new Set([0, -KVM_STATUS.KVM_EPERM, -KVM_STATUS.KVM_EAGAIN]);

interface Guest {
  name: string;
  m: SyntheticMachine;
}

function guest(name: string, link: VerifierLink, audit: AuditLog): Guest {
  const m = bootSynthetic({ vcpus: VCPUS, name });
  const boot = m.vmm.core.vcpus[0]!.getState();
  for (const v of m.vmm.core.vcpus.slice(1)) if (!v.setStateByVmm(boot).ok) throw new Error('vcpu state');
  for (let i = 0; i < VCPUS; i++) m.pt.map(VA_BASE + BigInt(i) * 0x1000n, PAGE_BASE + BigInt(i) * 0x1000n, PTE.RW | PTE.NX);
  m.vmm.core.attachVerifier({ port: link, vm: name, audit, kernelRegions: [] });
  return { name, m };
}

/** Calls until the answer is not -KVM_EAGAIN; returns every answer. */
async function untilDecided(call: () => Promise<number>): Promise<number[]> {
  const answers: number[] = [];
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const r = await call();
    answers.push(r);
    if (r !== -KVM_STATUS.KVM_EAGAIN) return answers;
    await new Promise((res) => setTimeout(res, 1 + Math.floor(Math.random() * 3)));
  }
  throw new Error('still busy after 10000 attempts');
}

test(`${GUESTS} guests x ${VCPUS} vCPUs on one verifier with maxInFlight 4: EAGAIN, retries, nothing lost or doubled, one audit record per verdict`, async (t) => {
  const link = await VerifierLink.start({ init: { keyring: keys.data, plugins: ['set-memory'] }, maxInFlight: 4, spare: false });
  t.teardown(() => link.dispose());
  const audit = AuditLog.inMemory();
  const guests = Array.from({ length: GUESTS }, (_, i) => guest(`vm${i}`, link, audit));

  const answersPerVm = new Map<string, number[]>();
  const finals: Array<{ vm: string; vcpu: number; step: number; final: number }> = [];
  const t0 = performance.now();
  await Promise.all(
    guests.flatMap((g) =>
      g.m.vmm.core.vcpus.map(async (cpu, i) => {
        const va = VA_BASE + BigInt(i) * 0x1000n;
        for (const [step, { attr }] of PLAN.entries()) {
          const answers = await untilDecided(() => cpu.vmcall(HC.HEKI_SET_MEMORY, va, 1n, attr));
          (answersPerVm.get(g.name) ?? answersPerVm.set(g.name, []).get(g.name)!).push(...answers);
          finals.push({ vm: g.name, vcpu: i, step, final: answers.at(-1)! });
        }
      }),
    ),
  );
  const ms = performance.now() - t0;

  const all = [...answersPerVm.values()].flat();
  const eagain = all.filter((r) => r === -KVM_STATUS.KVM_EAGAIN).length;
  t.log(`${all.length} hypercalls (${eagain} -KVM_EAGAIN) in ${ms.toFixed(0)} ms; peak in flight ${link.stats.peakInFlight}`);
  t.true(
    all.every((r) => KNOWN.has(r)),
    'every answer is 0, -KVM_EPERM or -KVM_EAGAIN',
  );
  t.true(eagain > 0, 'the bound was exceeded and refused');
  t.is(eagain, link.stats.busy);
  t.true(link.stats.peakInFlight <= 4, `peak ${link.stats.peakInFlight} stays within the bound`);

  // Every request eventually got its real answer: the retry succeeded.
  t.is(finals.length, GUESTS * VCPUS * PLAN.length);
  for (const f of finals) t.is(f.final, PLAN[f.step]!.expect, `${f.vm} vcpu ${f.vcpu} step ${f.step}`);

  // Nothing lost: every request the link admitted reached the worker exactly once.
  t.is(link.stats.requests, all.length);
  const ws = (await link.workerStats()) as { requests: number; allowed: number; denied: number };
  t.is(ws.requests, link.stats.requests - link.stats.busy);
  t.is(ws.allowed, GUESTS * VCPUS * 3);
  t.is(ws.denied, GUESTS * VCPUS * 2);
  t.is(link.stats.failClosed, 0);

  // Nothing answered twice: one audit record per verdict, distinct request ids, per VM.
  const verdicts = audit.records().filter((r) => r['event'] === 'verdict');
  t.is(verdicts.length, all.length);
  const ids = verdicts.map((r) => r['request'] as number);
  t.is(new Set(ids).size, ids.length);
  t.deepEqual(
    [...ids].sort((a, b) => a - b),
    Array.from({ length: ids.length }, (_, i) => i + 1),
  );
  for (const g of guests) {
    const mine = verdicts.filter((r: AuditRecord) => r['vm'] === g.name);
    const answers = answersPerVm.get(g.name)!;
    t.is(mine.length, answers.length, `${g.name}: one record per hypercall`);
    t.is(mine.filter((r) => r['retryable'] === true).length, answers.filter((r) => r === -KVM_STATUS.KVM_EAGAIN).length);
    t.true(mine.filter((r) => r['retryable'] === true).every((r) => String(r['reason']).startsWith(`${VERIFIER_BUSY}:`)));
    // The last allowed step left each page read-only, and no page ever became executable.
    for (let i = 0; i < VCPUS; i++) t.is(g.m.vmm.core.ept.get(gfn(Number((PAGE_BASE >> 12n) + BigInt(i)))) & EPT_RWX_MASK, EPT_R);
    t.is(g.m.vmm.core.stopped, undefined);
  }
});

test('the bound on the link itself: k requests over maxInFlight are refused at once, retryable; unloads are exempt', async (t) => {
  const link = await VerifierLink.start({ init: { keyring: keys.data, plugins: ['module-signature'] }, maxInFlight: 3, spare: false });
  t.teardown(() => link.dispose());
  const load = (name: string): OutgoingRequest => ({ kind: 'module-load', vm: 'vm0', name, image: signedBlob(keys.keyPair), sections: [] });
  const pending = Array.from({ length: 8 }, (_, i) => link.verify(load(`m${i}`)));
  const unload = link.verify({ kind: 'module-unload', vm: 'vm0', name: 'm0' });
  t.is(link.inFlight, 4, 'three loads and the exempt unload');
  const verdicts = await Promise.all(pending);
  t.deepEqual(
    verdicts.map((v) => v.ok),
    [true, true, true, false, false, false, false, false],
  );
  t.true(verdicts.slice(3).every((v) => v.retryable === true && v.reason.startsWith('verifier busy: 3 requests in flight, the bound is 3')));
  t.true(verdicts.slice(0, 3).every((v) => v.retryable === undefined));
  t.false((await unload).retryable === true);
  t.is(link.stats.busy, 5);
  t.is(link.inFlight, 0);
  // Room again: the retry is decided.
  t.true((await link.verify(load('m5'))).ok);
});

test('maxInFlight must be a positive integer', async (t) => {
  await t.throwsAsync(VerifierLink.start({ init: { keyring: keys.data }, maxInFlight: 0 }), { message: /maxInFlight must be a positive integer, got 0/ });
});
