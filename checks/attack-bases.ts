/**
 * The booted bases a run of the attack catalogue forks its machines from (checks/attacks.ts):
 * one base per machine configuration that two or more of the run's attacks share, booted on
 * first use; every attack then runs on its own fork of it (machine/machine-fork.ts), a
 * machine in the booted state, independent of the base and of every other fork. A
 * configuration only one attack needs (protected memory, a revoked key) gets a fresh boot:
 * a base would cost a boot and a fork.
 *
 * Attacks that change the boot itself (the boot-* touch-up attacks) reboot their fork the
 * way a guest can (guest/attacks/attacker-boot.ts), so they too run on forks.
 */
import { type Result, err, ok } from '../shared/result.ts';
import { bootBase, type MachineBase, type MachineConfig } from '../machine/machine.ts';
import type { SimulatedMachine } from '../machine/simulated-machine.ts';

/** What makes two attacks' machines the same: every field of the configuration but the shared image. */
function configKey(config: MachineConfig): string {
  const { image: _image, ...rest } = config;
  return JSON.stringify(rest, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** The bases of one run. */
export class AttackBases {
  readonly #bases = new Map<string, Promise<Result<MachineBase, string>>>();
  readonly #uses = new Map<string, number>();
  readonly #warm: number;

  /** `warm`: verifiers each base keeps started ahead (the run's concurrency). */
  constructor(warm: number) {
    this.#warm = warm;
  }

  /** Notes that an attack of the run will ask for a machine of `config` (before the run starts). */
  expect(config: MachineConfig): void {
    const key = configKey(config);
    this.#uses.set(key, (this.#uses.get(key) ?? 0) + 1);
  }

  /** Whether machines of `config` come from a base (two or more attacks expect it). */
  forks(config: MachineConfig): boolean {
    return (this.#uses.get(configKey(config)) ?? 0) >= 2;
  }

  /**
   * A fork of the base of `config`, booting the base on first use. A base that does not boot
   * fails the attacks waiting for it (not stopped, with the boot's reason); the next attack
   * boots one again.
   */
  async machine(config: MachineConfig): Promise<Result<SimulatedMachine, string>> {
    const key = configKey(config);
    let base = this.#bases.get(key);
    if (!base) {
      base = bootBase(config, { warm: this.#warm }).then((b) => {
        if (b.ok) return ok(b.value);
        // Not kept: the next attack of this configuration boots a base again.
        this.#bases.delete(key);
        return err(`the base machine did not boot: ${b.error.message}`);
      });
      this.#bases.set(key, base);
    }
    const b = await base;
    return b.ok ? b.value.fork() : b;
  }

  /** Stops every base (forks are disposed by their attacks). */
  async dispose(): Promise<void> {
    const bases = [...this.#bases.values()];
    this.#bases.clear();
    await Promise.all(
      bases.map(async (p) => {
        const b = await p;
        if (b.ok) await b.value.dispose();
      }),
    );
  }
}
