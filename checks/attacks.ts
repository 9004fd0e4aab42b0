/**
 * The runner of the security regression catalogue (guest/attacks/): each attack on its own
 * machine with the real Debian 6.1 kernel in its booted state, the machine always disposed.
 * By default that machine is a fork of one booted base per machine configuration the run's
 * attacks share (checks/attack-bases.ts, machine/machine-fork.ts), as indistinguishable
 * from a fresh boot as the fork test shows; `fork: false` boots a machine per attack. What
 * can be shared safely is shared: the loaded kernel image (never written to) and the host key
 * files. An attack that throws, times out, or whose machine does not boot counts as NOT
 * stopped, with the problem as its detail: the catalogue fails loudly, never silently.
 *
 * Each report's `stop` is what the guest saw (the attack's own words) followed by what the
 * host recorded while the attack ran: the VM exits in the VMM's event log and the verdicts in
 * the audit log that refused something.
 *
 * Every machine boots with the run's CPU model (default: the VMM's default model). An attack
 * whose {@link AttackNeeds.cpu} the model does not meet is not run: its report says it is not
 * applicable on that model and why (neither stopped nor failed; it never counts as stopped).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attack, AttackContext, AttackSigners, ModuleFileSigner } from '../guest/attacks/attack.ts';
import { ATTACKS, checkCatalogue } from '../guest/attacks/catalogue.ts';
import { unmetCpuNeeds } from '../guest/attacks/cpu-needs.ts';
import { hypervisorGap } from '../guest/attacks/hypervisor-needs.ts';
import { DEFAULT_HYPERVISOR, type HypervisorKind } from '../shared/hypervisor-kind.ts';
import type { CpuModel } from '../shared/x86/cpu-model.ts';
import { resolveCpuModel, type CpuModelSpec } from '../hypervisor/vmm/cpu-models.ts';
import { type Result, err, ok } from '../shared/result.ts';
import { defaultFixtureDir, fixturePaths, type FixturePaths } from '../shared/kernel-image/fixture-paths.ts';
import { loadKernelImage } from '../shared/kernel-image/load-kernel.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import { formatPublicKeyFile } from '../tools/key-files.ts';
import { signCodeImage } from '../verifier-vm/signature/code-image.ts';
import { ed25519KeyId, ed25519KeyIdHex, generateEd25519KeyPair, type Ed25519KeyPair } from '../shared/crypto/ed25519.ts';
import { signModuleFile } from '../tools/sign-module.ts';
import { attackHost } from '../machine/attack-host.ts';
import { AttackBases } from './attack-bases.ts';
import { hostEvidence } from './attack-evidence.ts';
import { createMachineDetailed, type MachineConfig } from '../machine/machine.ts';
import type { SimulatedMachine } from '../machine/simulated-machine.ts';

/** One attack's outcome, as `heki attacks --json` prints it. */
export interface AttackReport {
  readonly name: string;
  readonly stopped: boolean;
  /** False when the attack does not apply to the run's CPU model (`stop` says why); it was not run. */
  readonly applicable: boolean;
  readonly stop: string;
  readonly detail: string;
}

/** A whole run. */
export interface AttacksRun {
  readonly attacks: readonly AttackReport[];
  readonly total: number;
  readonly stopped: number;
  /** Attacks that do not apply to the run's CPU model. */
  readonly notApplicable: number;
  /** The CPU model every machine booted with. */
  readonly cpu: string;
  /** The hypervisor every machine ran on (runAttacks always says; optional for scripted runners). */
  readonly hypervisor?: HypervisorKind;
}

/** Why a run could not start: a name that is no attack, or missing kernel fixtures. */
export type AttacksError =
  | { readonly kind: 'unknown-attack'; readonly names: readonly string[]; readonly message: string }
  | { readonly kind: 'no-fixtures'; readonly message: string }
  | { readonly kind: 'bad-fixtures'; readonly message: string }
  | { readonly kind: 'bad-cpu'; readonly message: string };

/** How to run. */
export interface RunAttacksOptions {
  /** The fixture folder (default: `$HEKI_FIXTURES` or the one beside the repository). */
  readonly fixtureDir?: string;
  /** The CPU model every machine boots with: a named model or a reference folder (default: the VMM's default, skylake-smp2). */
  readonly cpu?: CpuModelSpec;
  /**
   * The hypervisor every machine runs on (default `kvm`). An attack its ABI cannot express
   * (guest/attacks/hypervisor-needs.ts) is not run and reported not applicable, with why.
   */
  readonly hypervisor?: HypervisorKind;
  /** Attacks run at once, each on its own machine (default {@link DEFAULT_ATTACK_CONCURRENCY}). */
  readonly concurrency?: number;
  /** How long one attack may take, boot included, before it counts as not stopped (default 120 s). */
  readonly timeoutMs?: number;
  /** Called as each attack finishes, with its index in the run (for progress output). */
  readonly onReport?: (report: AttackReport, index: number) => void;
  /**
   * Builds the machine an attack runs on, with its kernel running, from the configuration
   * the attack needs (default: a fresh machine, booted). For the catalogue against a VM in
   * another state: migrated, restored from a snapshot (docs/lifecycle.md).
   */
  readonly machine?: (config: MachineConfig) => Promise<Result<SimulatedMachine, string>>;
  /**
   * Run each attack on its own fork of one booted base per machine configuration
   * (checks/attack-bases.ts; default true), or boot a machine per attack (false). Ignored
   * when `machine` is given.
   */
  readonly fork?: boolean;
}

/**
 * Looks at the machine around one attack, for tests: `before` on the booted machine before
 * the attack, `after` once it ran, before the machine is disposed. An exception from either
 * propagates (after the machine is disposed).
 */
export interface AttackProbe<B, A> {
  before?(machine: SimulatedMachine): B | Promise<B>;
  after?(machine: SimulatedMachine, before: B | undefined, report: AttackReport): A | Promise<A>;
}

/** Default {@link RunAttacksOptions.timeoutMs}. */
export const DEFAULT_ATTACK_TIMEOUT_MS = 120_000;
/**
 * Default {@link RunAttacksOptions.concurrency}: one machine per CPU, at most 4 (a boot is
 * CPU-bound on the main thread; more machines than CPUs only slow each other down).
 */
export const DEFAULT_ATTACK_CONCURRENCY = Math.max(1, Math.min(4, availableParallelism()));

/** Every attack of the catalogue, for `--list`. */
export function listAttacks(): ReadonlyArray<Pick<Attack, 'name' | 'title' | 'expectedStop'>> {
  return ATTACKS.map(({ name, title, expectedStop }) => ({ name, title, expectedStop }));
}

/** The attacks `names` selects (all when empty), or the names that are no attack. */
export function selectAttacks(names: readonly string[] = []): Result<readonly Attack[], AttacksError> {
  checkCatalogue();
  if (names.length === 0) return ok(ATTACKS);
  const unknown = names.filter((n) => !ATTACKS.some((a) => a.name === n));
  if (unknown.length) {
    return err({
      kind: 'unknown-attack',
      names: unknown,
      message: `unknown attack${unknown.length > 1 ? 's' : ''}: ${unknown.map((n) => `'${n}'`).join(', ')}`,
    });
  }
  const wanted = new Set(names);
  return ok(ATTACKS.filter((a) => wanted.has(a.name)));
}

/** What every machine of a run shares: the image, the fixture paths, the host key files. */
interface RunEnv {
  readonly fx: FixturePaths;
  readonly cpu: CpuModel;
  readonly hypervisor: HypervisorKind;
  readonly image: KernelImage;
  readonly dir: string;
  readonly trustedPub: string;
  readonly revokedPub: string;
  readonly revokedList: string;
  readonly signers: Required<AttackSigners>;
  readonly moduleFile: (name: string) => Uint8Array | undefined;
}

/** Checks the fixtures, naming every missing file and where it was looked for. */
export function checkAttackFixtures(dir: string = defaultFixtureDir()): Result<FixturePaths, AttacksError> {
  const fx = fixturePaths(dir);
  const missing = [fx.vmlinuz, fx.systemMap, fx.signingKeyDer, fx.modulesDir].filter((p) => !existsSync(p));
  if (missing.length) {
    return err({
      kind: 'no-fixtures',
      message: `kernel fixtures not found in ${fx.dir}: missing ${missing.join(', ')} (set HEKI_FIXTURES to the folder holding vmlinuz, System.map, signing_key.x509.der and modules/)`,
    });
  }
  return ok(fx);
}

function moduleSigner(key: Ed25519KeyPair): ModuleFileSigner {
  return (file) => {
    const r = signModuleFile(file, key);
    if (!r.ok) throw new Error(`cannot sign the module: ${r.error}`);
    return r.value;
  };
}

async function prepareEnv(fx: FixturePaths, cpu: CpuModel, hypervisor: HypervisorKind): Promise<Result<RunEnv, AttacksError>> {
  const image = await loadKernelImage({ vmlinuzPath: fx.vmlinuz, systemMapPath: fx.systemMap });
  if (!image.ok) return err({ kind: 'bad-fixtures', message: `${fx.vmlinuz}: ${image.error.message}` });
  const trusted = generateEd25519KeyPair();
  const revoked = generateEd25519KeyPair();
  const attacker = generateEd25519KeyPair();
  const dir = mkdtempSync(join(tmpdir(), 'heki-attacks-'));
  const trustedPub = join(dir, 'trusted.pub.json');
  const revokedPub = join(dir, 'revoked.pub.json');
  const revokedList = join(dir, 'revoked.txt');
  writeFileSync(trustedPub, formatPublicKeyFile(trusted.publicKey, 'module-signing'));
  writeFileSync(revokedPub, formatPublicKeyFile(revoked.publicKey, 'module-signing'));
  writeFileSync(revokedList, `# revoked for the load-module-revoked-key attack\ned25519:${ed25519KeyIdHex(revoked.publicKey)}\n`);
  const modules = new Map<string, Uint8Array | undefined>();
  const moduleFile = (name: string): Uint8Array | undefined => {
    if (!modules.has(name)) {
      const path = [name, name.replaceAll('_', '-'), name.replaceAll('-', '_')].map((n) => join(fx.modulesDir, `${n}.ko`)).find((p) => existsSync(p));
      modules.set(name, path ? new Uint8Array(readFileSync(path)) : undefined);
    }
    const bytes = modules.get(name);
    return bytes ? Uint8Array.from(bytes) : undefined;
  };
  return ok({
    fx,
    cpu,
    hypervisor,
    image: image.value,
    dir,
    trustedPub,
    revokedPub,
    revokedList,
    moduleFile,
    signers: {
      attacker: moduleSigner(attacker),
      revoked: moduleSigner(revoked),
      code: (img, placement) => ({ keyId: ed25519KeyId(trusted.publicKey), signature: signCodeImage(img, placement, trusted) }),
    },
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
}

async function runOn<B, A>(
  attack: Attack,
  env: RunEnv,
  timeoutMs: number,
  probe?: AttackProbe<B, A>,
  machine?: RunAttacksOptions['machine'],
  cpu?: CpuModelSpec,
  bases?: AttackBases,
): Promise<{ report: AttackReport; after: A | undefined }> {
  const needs = attack.needs ?? {};
  const notStopped = (stop: string, detail: string): { report: AttackReport; after: undefined } => ({
    report: { name: attack.name, stopped: false, applicable: true, stop, detail },
    after: undefined,
  });
  const unmet = needs.cpu ? unmetCpuNeeds(env.cpu, needs.cpu) : undefined;
  if (unmet !== undefined) {
    const stop = `not applicable on CPU model ${env.cpu.name}: ${unmet}`;
    return {
      report: {
        name: attack.name,
        stopped: false,
        applicable: false,
        stop,
        detail: `${stop}; the attack was not run (run it on a model that meets its needs: heki attacks --list)`,
      },
      after: undefined,
    };
  }
  const gap = hypervisorGap(env.hypervisor, attack.name);
  if (gap !== undefined) {
    const stop = `not applicable on hypervisor ${env.hypervisor}: ${gap}`;
    return {
      report: { name: attack.name, stopped: false, applicable: false, stop, detail: `${stop}; the attack was not run (docs/hypervisors.md)` },
      after: undefined,
    };
  }
  const config = attackMachineConfig(attack, env, cpu);
  const make = machine ?? (bases?.forks(config) ? (c: MachineConfig) => bases.machine(c) : undefined);
  if (make) {
    let made: Result<SimulatedMachine, string>;
    try {
      made = await withTimeout(make(config), timeoutMs, 'the machine');
    } catch (e) {
      return notStopped('the machine did not start', errorText(e));
    }
    if (!made.ok) return notStopped('the machine did not start', made.error);
    return attackOn(attack, env, timeoutMs, made.value, probe);
  }
  const built = await createMachineDetailed(config);
  if (!built.ok) return notStopped('the machine did not start', built.error.message);
  return attackOn(attack, env, timeoutMs, built.value, probe, true);
}

/** The machine `attack` runs on: the run's CPU model, kernel and keys, and what the attack needs. */
function attackMachineConfig(attack: Attack, env: RunEnv, cpu?: CpuModelSpec): MachineConfig {
  const needs = attack.needs ?? {};
  return {
    ...(cpu !== undefined ? { cpu } : {}),
    kernel: 'real',
    cpu: env.cpu,
    hypervisor: env.hypervisor,
    vmlinuz: env.fx.vmlinuz,
    systemMap: env.fx.systemMap,
    image: env.image,
    keys: {
      pubkeys: [env.trustedPub, ...(needs.revokedKey ? [env.revokedPub] : [])],
      certs: [env.fx.signingKeyDer],
      revoked: needs.revokedKey ? [env.revokedList] : [],
    },
    ...(needs.verifierFaults ? { faultInjection: true } : {}),
    ...(needs.protectedMemory ? { protectedMemory: true } : {}),
    // A warm spare verifier only matters for failover; the attacks on the verifier get the
    // production setup, the others one thread less competing with the boot.
    ...(needs.verifierFaults ? {} : { verifierSpare: false }),
  };
}

/** Runs `attack` on machine `m` (booting it first when `boot`); always disposes `m`. */
async function attackOn<B, A>(
  attack: Attack,
  env: RunEnv,
  timeoutMs: number,
  m: SimulatedMachine,
  probe?: AttackProbe<B, A>,
  boot = false,
): Promise<{ report: AttackReport; after: A | undefined }> {
  const needs = attack.needs ?? {};
  const notStopped = (stop: string, detail: string): { report: AttackReport; after: undefined } => ({
    report: { name: attack.name, stopped: false, applicable: true, stop, detail },
    after: undefined,
  });
  try {
    if (boot) {
      const mark = m.verdictMark();
      const b = await withTimeout(m.boot(), timeoutMs, 'boot');
      // The verifier's own reason, when it refused the boot (a timeout says so: fail closed).
      const why = m.deniedSince(mark);
      if (b.outcome !== 'allowed' || !m.kernel)
        return notStopped('the kernel did not boot', `${b.reason}${why.length ? `; verifier: ${why.join(' | ')}` : ''}`);
    }
    const kernel = m.kernel;
    if (!kernel) return notStopped('the kernel did not boot', 'the machine has no running kernel');
    const before = probe?.before ? await probe.before(m) : undefined;
    const events = m.vmm.log.events();
    const fromSeq = events.length ? events[events.length - 1]!.seq + 1 : 0;
    const fromAudit = m.audit.count;
    const ctx: AttackContext = {
      kernel,
      cpu: kernel.cpu,
      moduleFile: env.moduleFile,
      signers: { attacker: env.signers.attacker, code: env.signers.code, ...(needs.revokedKey ? { revoked: env.signers.revoked } : {}) },
      host: attackHost(m),
    };
    let report: AttackReport;
    try {
      const r = await withTimeout(attack.run(ctx), timeoutMs, `attack ${attack.name}`);
      const ev = hostEvidence(m, fromSeq, fromAudit);
      report = {
        name: attack.name,
        stopped: r.stopped,
        applicable: true,
        stop: ev.short ? `${r.stop}; ${ev.short}` : r.stop,
        detail: `${r.detail}; ${ev.long}`,
      };
    } catch (e) {
      report = {
        name: attack.name,
        stopped: false,
        applicable: true,
        stop: `the attack failed: ${errorText(e)}`,
        detail: e instanceof Error && e.stack ? e.stack : errorText(e),
      };
    }
    const after = probe?.after ? await probe.after(m, before, report) : undefined;
    return { report, after };
  } finally {
    await m.dispose();
  }
}

async function withEnv<T>(opts: RunAttacksOptions, f: (env: RunEnv) => Promise<T>): Promise<Result<T, AttacksError>> {
  const cpu = resolveCpuModel(opts.cpu);
  if (!cpu.ok) return err({ kind: 'bad-cpu', message: cpu.error });
  const fx = checkAttackFixtures(opts.fixtureDir);
  if (!fx.ok) return fx;
  const env = await prepareEnv(fx.value, cpu.value, opts.hypervisor ?? DEFAULT_HYPERVISOR);
  if (!env.ok) return env;
  try {
    return ok(await f(env.value));
  } finally {
    rmSync(env.value.dir, { recursive: true, force: true });
  }
}

/**
 * Runs the attacks `names` (all when omitted or empty), each on its own machine (a fork of
 * a booted base, or a fresh boot: {@link RunAttacksOptions.fork}), at most
 * `concurrency` at a time. Reports come back in catalogue order. Fails (typed) only for an
 * unknown name or missing fixtures; anything that goes wrong inside an attack is that
 * attack's report.
 */
export async function runAttacks(names: readonly string[] = [], opts: RunAttacksOptions = {}): Promise<Result<AttacksRun, AttacksError>> {
  const selected = selectAttacks(names);
  if (!selected.ok) return selected;
  const attacks = selected.value;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_ATTACK_TIMEOUT_MS;
  const width = Math.max(1, Math.min(opts.concurrency ?? DEFAULT_ATTACK_CONCURRENCY, attacks.length));
  return withEnv(opts, async (env) => {
    // One booted base per configuration that several attacks share, unless the caller builds
    // the machines or asked for a boot per attack.
    const bases = opts.machine || opts.fork === false ? undefined : new AttackBases(width);
    if (bases)
      for (const a of attacks) if (!a.needs?.cpu || unmetCpuNeeds(env.cpu, a.needs.cpu) === undefined) bases.expect(attackMachineConfig(a, env, opts.cpu));
    try {
      return await runAll(env, bases);
    } finally {
      await bases?.dispose();
    }
  });

  async function runAll(env: RunEnv, bases: AttackBases | undefined): Promise<AttacksRun> {
    const reports: AttackReport[] = new Array<AttackReport>(attacks.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < attacks.length) {
        const i = next++;
        const attack = attacks[i]!;
        let report: AttackReport;
        try {
          report = (await runOn(attack, env, timeoutMs, undefined, opts.machine, opts.cpu, bases)).report;
        } catch (e) {
          report = {
            name: attack.name,
            stopped: false,
            applicable: true,
            stop: `the runner failed: ${errorText(e)}`,
            detail: e instanceof Error && e.stack ? e.stack : errorText(e),
          };
        }
        reports[i] = report;
        opts.onReport?.(report, i);
      }
    };
    await Promise.all(Array.from({ length: width }, worker));
    return {
      attacks: reports,
      total: reports.length,
      stopped: reports.filter((r) => r.stopped).length,
      notApplicable: reports.filter((r) => !r.applicable).length,
      cpu: env.cpu.name,
      hypervisor: env.hypervisor,
    };
  }
}

/**
 * Runs one attack like {@link runAttacks} does, with a {@link AttackProbe} looking at the
 * machine before and after (the security tests assert the VM exits, the audit records and the
 * protected state through it).
 */
export async function runAttack<B = undefined, A = undefined>(
  name: string,
  probe: AttackProbe<B, A> = {},
  opts: RunAttacksOptions = {},
): Promise<Result<{ report: AttackReport; after: A | undefined }, AttacksError>> {
  const selected = selectAttacks([name]);
  if (!selected.ok) return selected;
  const attack = selected.value[0]!;
  return withEnv(opts, (env) => runOn(attack, env, opts.timeoutMs ?? DEFAULT_ATTACK_TIMEOUT_MS, probe, opts.machine, opts.cpu));
}
