/**
 * Forking a booted machine: boot once, then make any number of machines from that booted
 * state in memory, each as if it had booted itself (docs/fork.md).
 *
 * A fork is a new VMM and a new verifier, like a migration's destination
 * (lifecycle/migration.ts), built from the parent's live objects instead of a signed image:
 * - the VM (hypervisor/vmm/lifecycle/vm-fork.ts): guest memory shared copy-on-write with the
 *   parent, the EPT copied, pins, filters, exit masks, registers, the authenticator's records,
 *   the CPUs online, the staged kexec kernels, the disk;
 * - the verifier's per-VM state: exported by the parent's verifier and imported by the fork's
 *   (VerifierLink `exportVmSection` / `importVm`: the `verifier` section of a state image), bytes over the worker boundary, checked there as a
 *   restore checks it; the fork's verifier never decides the boot's requests again;
 * - the guest kernel's bookkeeping (guest/kernel/guest-state.ts), saved and rebuilt on the
 *   fork's vCPU, as a migration carries it.
 * The fork gets a new VM id, a new audit log (its first record names the parent's head), a
 * new event log, and the parent's host side (keyring, manifest, code-signing and VMM keys).
 *
 * What costs time is the verifier worker, a thread to start: a {@link MachineBase} keeps
 * `warm` of them started ahead, so `fork()` is the in-memory copy.
 */
import { randomBytes } from 'node:crypto';
import { type Result, err, ok } from '../shared/result.ts';
import { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import { Vmm } from '../hypervisor/vmm/vmm.ts';
import { forkVmInto } from '../hypervisor/vmm/lifecycle/vm-fork.ts';
import { auditLifecycle } from '../hypervisor/vmm/lifecycle/lifecycle-audit.ts';
import { notify } from '../hypervisor/observe/vm-observer.ts';
import { observePort } from '../hypervisor/observe/observed-port.ts';
import { AuditLog } from '../hypervisor/audit/audit-log.ts';
import { generateEd25519KeyPair, ed25519KeyIdHex } from '../shared/crypto/ed25519.ts';
import type { WorkerInit } from '../shared/worker-api.ts';
import { restoreGuestKernel, saveGuestKernel } from '../guest/kernel/guest-state.ts';
import type { MachineHost } from './lifecycle/machine-host.ts';
import { SimulatedMachine } from './simulated-machine.ts';

/** A verifier link started ahead for a fork, or why it did not start. */
type StartedLink = Promise<Result<VerifierLink, string>>;

function startLink(init: WorkerInit, host: MachineHost): StartedLink {
  return VerifierLink.start({ init, ...host.linkOptions }).then(
    (l) => ok(l),
    (e: unknown) => err(`the fork's verifier did not start: ${e instanceof Error ? e.message : String(e)}`),
  );
}

/**
 * The verifier configuration of a fork of `machine`, and the VMM identity key it signs
 * with: the parent's VMM key when the host named one (the keyring already trusts it), else a
 * fresh key that joins the keyring as the fork's `vmm` key.
 */
function forkIdentity(machine: SimulatedMachine, host: MachineHost): { init: WorkerInit; key: ReturnType<typeof generateEd25519KeyPair> } {
  if (host.vmmKey) return { init: host.verifierInit, key: host.vmmKey };
  const key = generateEd25519KeyPair();
  const init = host.verifierInit;
  const vm = machine.vmm.identity.vm;
  const ed25519 = [
    ...init.keyring.ed25519,
    { keyId: ed25519KeyIdHex(key.publicKey), role: 'vmm' as const, publicKey: key.publicKey, source: `the VMM's key for a fork of ${vm}` },
  ];
  return { init: { ...init, keyring: { ...init.keyring, ed25519 } }, key };
}

/**
 * Forks `machine`, which must run its boot kernel and be idle (between steps): a new machine
 * in the same state (see the file comment), independent of it from now on. `link`, when
 * given, is a verifier already started with the configuration the fork needs (a
 * {@link MachineBase}'s warm one); it is disposed when the fork fails.
 */
export async function forkMachine(machine: SimulatedMachine, link?: StartedLink): Promise<Result<SimulatedMachine, string>> {
  const parent = machine.parts;
  const host = parent.host;
  const kernel = machine.kernel;
  const give = async (why: string, l?: VerifierLink): Promise<Result<never, string>> => {
    if (l) await l.dispose();
    else if (link) await link.then((r) => (r.ok ? r.value.dispose() : undefined));
    return err(why);
  };
  if (!host) return give('the machine was built without its host side: nothing to fork a verifier from');
  if (!kernel) return give('the machine runs no kernel (it is not booted, hibernated or stopped): nothing to fork');
  if (machine.image !== parent.bootImage) return give("the machine runs a kexec'd kernel: a fork starts from a machine that runs its boot kernel");
  const auth = machine.vmm.core.auth;
  if (!auth) return give('the machine has no verifier attached');
  const bootKernel = machine.vmm.bootKernel;
  if (!bootKernel) return give('the machine has no boot kernel');
  const vm = machine.vmm.identity.vm;
  const { init, key } = forkIdentity(machine, host);
  const started = await (link ?? startLink(init, host));
  if (!started.ok) return give(started.error);
  const l = started.value;
  // INVARIANT: the parent's verifier state and VM state are read with no await between the
  // end of the export and the copy, so a parent that is idle between steps gives one state.
  const exported = await machine.link.exportVmSection(vm);
  if (exported === undefined) return give(`the parent's verifier holds no state for VM ${vm}`, l);
  const observer = host.observer;
  const audit = AuditLog.inMemory();
  const vmm = new Vmm({
    ...machine.vmm.settings,
    name: vm,
    identity: { vmId: randomBytes(16).toString('hex'), key },
    cpu: machine.vmm.cpuModel,
    ...(host.policy ? { policy: host.policy } : {}),
    ...(observer ? { observer } : {}),
  });
  const port = observer ? observePort(l, observer, { before: () => vmm.core.events?.flushEpt() }) : l;
  vmm.core.attachVerifier({ port, vm, audit, kernelRegions: auth.kernelRegions });
  vmm.setBootKernel(bootKernel);
  const head = machine.audit.head();
  const copied = forkVmInto(machine.vmm, vmm);
  if (!copied.ok) return give(copied.error, l);
  const guest = restoreGuestKernel(vmm.bootCpu, machine.image, structuredClone(saveGuestKernel(kernel)));
  if (!guest.ok) return give(`cannot fork the guest kernel: ${guest.error}`, l);
  // The fork's verifier takes the state before the fork's first request can reach it.
  const refused = await l.importVm(vm, exported);
  if (refused !== undefined) return give(`the fork's verifier refused the parent's state: ${refused}`, l);
  if (vmm.onlineCpus !== vmm.cpuModel.presentCpus) {
    const r = await l.setOnlineCpus(vm, vmm.onlineCpus);
    if (r !== undefined) return give(`the fork's verifier refused the CPUs online: ${r}`, l);
  }
  if (observer?.verifierStarted) {
    const time = performance.now();
    notify(() => observer.verifierStarted!({ vm, init, time }));
  }
  auditLifecycle(vmm, {
    type: 'fork',
    result: 'forked',
    parentVmId: machine.vmm.identity.vmId,
    parentAuditSeq: head.seq,
    parentAuditHash: head.hash,
    sharedPages: vmm.core.memory.sharedPages(),
  });
  return ok(
    new SimulatedMachine({
      vmm,
      link: l,
      audit,
      image: machine.image,
      memoryBytes: parent.memoryBytes,
      codeSigner: parent.codeSigner,
      ...(parent.log ? { log: parent.log } : {}),
      host: init === host.verifierInit ? host : { ...host, verifierInit: init },
      kernel: guest.value,
    }),
  );
}

/** How many verifier workers a {@link MachineBase} keeps started ahead by default. */
export const DEFAULT_WARM_FORKS = 1;

/**
 * A booted machine kept idle to be forked (`bootBase` in machine/machine.ts makes one). Its
 * own machine never runs a step: every user works on a fork. Dispose it when done (its
 * verifier and the warm ones stop); forks live on after it.
 */
export class MachineBase {
  readonly #machine: SimulatedMachine;
  readonly #warm: number;
  readonly #ready: StartedLink[] = [];
  #disposed = false;
  #forks = 0;

  /** `machine`: booted, with its host side and the VMM key the host named (bootBase makes it so). */
  constructor(machine: SimulatedMachine, options: { readonly warm?: number } = {}) {
    this.#machine = machine;
    this.#warm = Math.max(0, Math.floor(options.warm ?? DEFAULT_WARM_FORKS));
    this.#fill();
  }

  /** The booted machine forks are made from; read it, never run steps on it. */
  get machine(): SimulatedMachine {
    return this.#machine;
  }

  /** A new machine in the base's booted state (see {@link forkMachine}). */
  async fork(): Promise<Result<SimulatedMachine, string>> {
    if (this.#disposed) return err('the base was disposed');
    const link = this.#ready.shift();
    this.#fill();
    const m = await forkMachine(this.#machine, link);
    if (m.ok) this.#forks++;
    return m;
  }

  /** Forks made so far. */
  get forks(): number {
    return this.#forks;
  }

  /** Resolves once the warm verifiers have started (or failed to): the next `warm` forks start none. */
  async warmed(): Promise<void> {
    await Promise.all(this.#ready);
  }

  /** Keeps `warm` verifiers starting or started (only when the fork's configuration is the base's own). */
  #fill(): void {
    const host = this.#machine.host;
    if (!host?.vmmKey) return;
    while (!this.#disposed && this.#ready.length < this.#warm) this.#ready.push(startLink(host.verifierInit, host));
  }

  /** Stops the base machine and the warm verifiers. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const warm = this.#ready.splice(0);
    await Promise.all([this.#machine.dispose(), ...warm.map((p) => p.then((r) => (r.ok ? r.value.dispose() : undefined)))]);
  }
}
