/**
 * A parsed scenario: what `heki run` executes. The YAML file (docs/scenarios.md) is turned
 * into these types by `parseScenario` (parse.ts); every value here has already been
 * checked (syntax of addresses and hex, ranges of numbers, names of bits and MSRs) and every
 * relative path resolved against the scenario file's folder. Only symbol resolution is left
 * for run time (MachineApi.resolve).
 */
import type { HypervisorKind } from '../shared/hypervisor-kind.ts';
import type { AddressExpr, FtraceTarget, Mode } from '../machine/machine-api.ts';

/** Every step kind, in the order docs/scenarios.md documents them. */
export const STEP_KINDS = [
  'boot',
  'load-module',
  'unload-module',
  'ftrace',
  'jump-label',
  'static-call',
  'set-memory',
  'text-poke',
  'kprobe',
  'bpf-jit',
  'read',
  'write',
  'exec',
  'write-cr',
  'write-msr',
  'hypercall',
  'reboot',
  'kexec',
  'panic',
  'hibernate',
  'resume',
  'migrate',
  'cpu-online',
  'save-memory',
] as const;

/** The name of a step kind, as written in the YAML. */
export type StepKind = (typeof STEP_KINDS)[number];

/** True when `s` names a step kind. */
export function isStepKind(s: string): s is StepKind {
  return (STEP_KINDS as readonly string[]).includes(s);
}

/**
 * What a step says should happen: the change `allowed` or `denied`, or the step an `error`
 * (the input was refused as malformed before any verdict: a corrupt module, an unknown
 * symbol), so that a regression file can pin that too.
 */
export type Expectation = 'allowed' | 'denied' | 'error';

/** A set_memory_* permission. */
export type MemoryPerm = 'ro' | 'rw' | 'x' | 'nx' | 'rox';

/** The kind a text-poke claims to be (what the verifier's plugins key on). */
export type PokeKind = 'ftrace' | 'jump-label' | 'static-call' | 'kprobe';

/** Enable or disable (ftrace, jump labels). */
export type Toggle = 'enable' | 'disable';

/** The parameters of each step kind, after validation. */
export type StepAction =
  | { readonly op: 'boot' }
  | { readonly op: 'load-module'; /** Absolute path of the .ko file. */ readonly path: string }
  | ({ readonly op: 'unload-module' } & (
      | { /** The module's name as the kernel knows it. */ readonly name: string }
      | { /** Absolute path of its .ko file: the name is read from its .modinfo when the step runs. */ readonly path: string }
    ))
  | { readonly op: 'ftrace'; readonly action: Toggle; readonly target: FtraceTarget }
  | { readonly op: 'jump-label'; readonly action: Toggle; readonly key: AddressExpr }
  | {
      readonly op: 'static-call';
      /** The key (its `__SCK__<name>` symbol). */
      readonly key: AddressExpr;
      /** The function, or null for NULL. */
      readonly target: AddressExpr | null;
    }
  | { readonly op: 'set-memory'; readonly addr: AddressExpr; readonly pages: number; readonly perm: MemoryPerm }
  | { readonly op: 'text-poke'; readonly addr: AddressExpr; readonly bytes: Uint8Array; readonly kind?: PokeKind }
  | { readonly op: 'kprobe'; readonly addr: AddressExpr; readonly action: 'install' | 'remove' }
  | { readonly op: 'bpf-jit'; readonly name: string; readonly image: Uint8Array; readonly signed: boolean }
  | { readonly op: 'read'; readonly addr: AddressExpr; readonly len: number; readonly mode: Mode }
  | { readonly op: 'write'; readonly addr: AddressExpr; readonly bytes: Uint8Array; readonly mode: Mode }
  | { readonly op: 'exec'; readonly addr: AddressExpr; readonly mode: Mode }
  | {
      readonly op: 'write-cr';
      readonly cr: 0 | 3 | 4;
      readonly value?: bigint;
      readonly set?: bigint;
      readonly clear?: bigint;
    }
  | { readonly op: 'write-msr'; readonly msr: number; readonly value: bigint }
  | { readonly op: 'hypercall'; readonly nr: number; readonly args: readonly bigint[] }
  | { readonly op: 'reboot' }
  | {
      readonly op: 'kexec';
      /** Absolute path of the bzImage, or undefined for the booted one. */
      readonly image?: string;
      /** Absolute path of its signed manifest, or undefined: the host builds and signs one. */
      readonly manifest?: string;
      /** Absolute path of its System.map, or undefined for the booted kernel's. */
      readonly systemMap?: string;
      readonly crash: boolean;
      readonly tamper?: 'image' | 'manifest';
      readonly signer: 'vendor' | 'untrusted';
    }
  | { readonly op: 'panic' }
  | { readonly op: 'hibernate' }
  | { readonly op: 'resume'; readonly tamper: boolean }
  | { readonly op: 'migrate'; readonly tamper: boolean }
  | { readonly op: 'cpu-online' }
  | {
      readonly op: 'save-memory';
      /** A kernel virtual address (or symbol expression). */
      readonly addr: AddressExpr;
      readonly len: number;
      /** Absolute path of the file written. */
      readonly out: string;
    };

/** One step: its action plus where it came from and what it expects. */
export type Step = StepAction & {
  /** 1-based position in `steps` (the `index` of its result). */
  readonly index: number;
  /** 1-based line of the step in the file. */
  readonly line: number;
  /** The `expect` value, or null when the step has none. */
  readonly expect: Expectation | null;
};

/** The step of kind `K`. */
export type StepOf<K extends StepKind> = Extract<Step, { readonly op: K }>;

/** Host key files for the verifier's keyring (absolute paths). */
export interface ScenarioKeys {
  readonly pubkeys: readonly string[];
  readonly certs: readonly string[];
  readonly revoked: readonly string[];
}

/** A whole scenario. */
export interface Scenario {
  readonly name: string;
  /** Free text from `description`, or undefined. */
  readonly description?: string;
  /** Absolute path of the file it was read from. */
  readonly file: string;
  readonly kernel: 'real' | 'synthetic';
  /**
   * The CPU model (`cpu:`): a named model as written (`skylake-smp2`), or a reference
   * folder's absolute path; undefined: the default model.
   */
  readonly cpu?: string;
  /** The hypervisor (`hypervisor: kvm | hyperv`); undefined: kvm. */
  readonly hypervisor?: HypervisorKind;
  /** Absolute path of the bzImage, when the file names one (kernel: real only). */
  readonly vmlinuz?: string;
  /** Absolute path of System.map, when the file names one (kernel: real only). */
  readonly systemMap?: string;
  readonly keys: ScenarioKeys;
  /** At least one step. */
  readonly steps: readonly Step[];
}
