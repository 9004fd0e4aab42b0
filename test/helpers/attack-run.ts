/**
 * Runs one attack of the catalogue through the same runner `heki attacks` uses (a fresh real
 * Debian 6.1 machine, always disposed), with a look at the machine before the attack and
 * after it, so a security test can assert the VM exit, the audit record and the protected
 * state. Wrap tests in {@link needsFixtures}: without the fixtures they are skipped.
 */
import { gpa as physAddr, gpaToGfn } from '../../shared/addr.ts';
import type { AttackReport, RunAttacksOptions } from '../../checks/attacks.ts';
import { runAttack } from '../../checks/attacks.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import type { AuditRecord } from '../../hypervisor/audit/audit-log.ts';
import { parseHypervisorKind } from '../../shared/hypervisor-kind.ts';
import type { LoadedModule } from '../../guest/modules/module-loader.ts';

/**
 * The hypervisor the security tests run on: `HEKI_HYPERVISOR=hyperv npx ava test/security/...`
 * runs the same test files on the Hyper-V personality (default kvm). A bad value throws, so a
 * typo cannot silently run KVM.
 */
export function testHypervisor(): Pick<RunAttacksOptions, 'hypervisor'> {
  const v = process.env['HEKI_HYPERVISOR'];
  if (v === undefined || v === '') return {};
  const h = parseHypervisorKind(v);
  if (!h.ok) throw new Error(`HEKI_HYPERVISOR: ${h.error}`);
  return { hypervisor: h.value };
}

/** What a test sees of one attack. */
export interface AttackRun<B, A> {
  readonly report: AttackReport;
  readonly before: B;
  readonly after: A;
}

/**
 * Runs attack `name`; `before` looks at the booted machine first, `after` once the attack ran
 * (the machine is still up, the attack's report at hand). `opts` are the runner's (the CPU model). Throws when the attack
 * cannot be run at all (unknown name, no fixtures, not applicable to the model): the test
 * fails loudly.
 */
export async function attackOnRealKernel<B, A>(
  name: string,
  look: { before?: (m: SimulatedMachine) => B | Promise<B>; after: (m: SimulatedMachine, before: B, report: AttackReport) => A | Promise<A> },
  opts: Pick<RunAttacksOptions, 'cpu' | 'hypervisor'> = {},
): Promise<AttackRun<B, A>> {
  let seenBefore: B | undefined;
  let seenAfter: A | undefined;
  let called = false;
  const r = await runAttack<B, A>(
    name,
    {
      before: async (m) => {
        seenBefore = look.before ? await look.before(m) : (undefined as B);
        return seenBefore;
      },
      after: async (m, _before, report) => {
        called = true;
        seenAfter = await look.after(m, seenBefore as B, report);
        return seenAfter;
      },
    },
    { ...testHypervisor(), ...opts },
  );
  if (!r.ok) throw new Error(r.error.message);
  if (!called) throw new Error(`attack ${name} did not run: ${r.value.report.stop}: ${r.value.report.detail}`);
  return { report: r.value.report, before: seenBefore as B, after: seenAfter as A };
}

/** The kernel symbol's address on the booted machine. */
export function sym(m: SimulatedMachine, name: string): bigint {
  const a = m.image.systemMap.address(name);
  if (a === undefined) throw new Error(`no symbol ${name}`);
  return a;
}

/** The guest-physical address behind a kernel virtual address (the core's own walk). */
export function gpaOf(m: SimulatedMachine, va: bigint): bigint {
  const f = m.vmm.core.vcpus[0]!.translateForCore(va);
  if (f === undefined) throw new Error(`0x${va.toString(16)} is not mapped`);
  return (BigInt(f) << 12n) | (va & 0xfffn);
}

/** The EPT bits of the frame holding guest-physical `gpa`. */
export function eptAt(m: SimulatedMachine, gpa: bigint): number {
  return m.vmm.core.ept.get(gpaToGfn(physAddr(gpa)));
}

/** `len` bytes of guest memory at `gpa`, as the host sees them. */
export function memAt(m: SimulatedMachine, gpa: bigint, len: number): Uint8Array {
  return m.vmm.core.memory.read(physAddr(gpa), len);
}

/** Audit records of verdicts of one kind. */
export function verdicts(m: SimulatedMachine, kind: string): AuditRecord[] {
  return m.audit.records().filter((r) => r['event'] === 'verdict' && r['kind'] === kind);
}

/** A loaded module of the guest (the attack loaded it). */
export function loadedModule(m: SimulatedMachine, name: string): LoadedModule {
  const mod = m.kernel?.modules.loaded.get(name);
  if (!mod) throw new Error(`module ${name} is not loaded`);
  return mod;
}

/** The byte the signed, relocated image of `mod` puts at `va`. */
export function signedByte(mod: LoadedModule, va: bigint): number {
  const s = mod.image.sections.find((x) => !x.nobits && va >= x.addr && va < x.addr + BigInt(x.size));
  if (!s) throw new Error(`no section of ${mod.name} holds 0x${va.toString(16)}`);
  return s.bytes[Number(va - s.addr)]!;
}
