/**
 * Runs a parsed scenario on a machine, step by step, and reports each outcome against its
 * expectation. The runner never throws: a machine call that throws, rejects, returns
 * nonsense or an unknown symbol becomes an `error` outcome naming the problem, and the run
 * goes on. The machine is always disposed at the end (its verifier workers stopped), whatever
 * happened before.
 */
import type { AddressExpr, MachineApi, StepOutcome } from '../machine/machine-api.ts';
import { scenarioResult, stepResult, type ScenarioResult, type StepResult } from './outcome.ts';
import type { Scenario, Step, StepKind, StepOf } from './scenario.ts';
import { err, ok, type Result } from '../shared/result.ts';
import { readHostFile } from '../shared/host-file.ts';
import { quoteForMessage } from '../shared/message-text.ts';
import { parseModuleFile, readModinfo } from '../shared/module/index.ts';

/** Called after each step (for progress output). */
export type StepObserver = (result: StepResult, step: Step, outcome: StepOutcome) => void;

/** Tuning of a run. */
export interface RunOptions {
  /**
   * How long one step may take before it counts as an `error` (default 300 s; a real-kernel
   * boot decompresses the bzImage the first time). After a timeout the machine's state is
   * unknown, so the remaining steps are not run and are reported as errors.
   */
  readonly stepTimeoutMs?: number;
  /** How long dispose() may take (default 30 s). */
  readonly disposeTimeoutMs?: number;
  /** Problems that do not change the result (dispose failed, an observer threw). */
  readonly onWarning?: (message: string) => void;
  /** Called before each step runs (for traces). */
  readonly onStepStart?: (step: Step) => void;
  /**
   * Called once after the last step and before the machine is disposed, to read its final
   * state (the report's memory map). Awaited; what it throws becomes a warning.
   */
  readonly beforeDispose?: (machine: MachineApi) => void | Promise<void>;
}

/** Default of {@link RunOptions.stepTimeoutMs}. */
export const DEFAULT_STEP_TIMEOUT_MS = 300_000;
/** Default of {@link RunOptions.disposeTimeoutMs}. */
export const DEFAULT_DISPOSE_TIMEOUT_MS = 30_000;

/** How each step kind drives the machine: the method (for messages) and the call. */
interface Performer<K extends StepKind> {
  readonly method: keyof MachineApi;
  perform(step: StepOf<K>, m: MachineApi): Promise<StepOutcome>;
}

const PERFORMERS = {
  boot: { method: 'boot', perform: (_s, m) => m.boot() },
  'load-module': { method: 'loadModule', perform: (s, m) => m.loadModule(s.path) },
  'unload-module': {
    method: 'unloadModule',
    perform: (s, m) => {
      if ('name' in s) return m.unloadModule(s.name);
      const name = moduleNameOf(s.path);
      return name.ok ? m.unloadModule(name.value) : Promise.resolve({ outcome: 'error', reason: name.error });
    },
  },
  ftrace: { method: 'ftrace', perform: (s, m) => m.ftrace(s.action, s.target) },
  'jump-label': { method: 'jumpLabel', perform: (s, m) => m.jumpLabel(s.action, s.key) },
  'static-call': { method: 'staticCall', perform: (s, m) => m.staticCall(s.key, s.target) },
  'set-memory': { method: 'setMemory', perform: (s, m) => m.setMemory(s.addr, s.pages, s.perm) },
  'text-poke': { method: 'textPoke', perform: (s, m) => m.textPoke(s.addr, s.bytes.slice(), s.kind) },
  kprobe: { method: 'kprobe', perform: (s, m) => m.kprobe(s.addr, s.action) },
  'bpf-jit': { method: 'bpfJit', perform: (s, m) => m.bpfJit(s.name, s.image.slice(), s.signed) },
  read: { method: 'read', perform: (s, m) => m.read(s.addr, s.len, s.mode) },
  write: { method: 'write', perform: (s, m) => m.write(s.addr, s.bytes.slice(), s.mode) },
  exec: { method: 'exec', perform: (s, m) => m.exec(s.addr, s.mode) },
  'write-cr': {
    method: 'writeCr',
    perform: (s, m) =>
      m.writeCr(s.cr, {
        ...(s.value !== undefined ? { value: s.value } : {}),
        ...(s.set !== undefined ? { set: s.set } : {}),
        ...(s.clear !== undefined ? { clear: s.clear } : {}),
      }),
  },
  'write-msr': { method: 'writeMsr', perform: (s, m) => m.writeMsr(s.msr, s.value) },
  hypercall: { method: 'hypercall', perform: (s, m) => m.hypercall(s.nr, [...s.args]) },
  reboot: { method: 'reboot', perform: (_s, m) => m.reboot() },
  kexec: {
    method: 'kexec',
    perform: (s, m) =>
      m.kexec({
        crash: s.crash,
        signer: s.signer,
        ...(s.image !== undefined ? { image: s.image } : {}),
        ...(s.manifest !== undefined ? { manifest: s.manifest } : {}),
        ...(s.systemMap !== undefined ? { systemMap: s.systemMap } : {}),
        ...(s.tamper !== undefined ? { tamper: s.tamper } : {}),
      }),
  },
  panic: { method: 'panic', perform: (_s, m) => m.panic() },
  hibernate: { method: 'hibernate', perform: (_s, m) => m.hibernate() },
  resume: { method: 'resume', perform: (s, m) => m.resume({ tamper: s.tamper }) },
  migrate: { method: 'migrate', perform: (s, m) => m.migrate({ tamper: s.tamper }) },
  'cpu-online': { method: 'cpuOnline', perform: (_s, m) => m.cpuOnline() },
  'save-memory': { method: 'saveMemory', perform: (s, m) => m.saveMemory(s.addr, s.len, s.out) },
} satisfies { readonly [K in StepKind]: Performer<K> };

/**
 * The name a .ko file's `.modinfo` gives its module (what the kernel and `rmmod` call it: the
 * file dm-mod.ko is module dm_mod), read through the bounded host-file reader; or why not.
 */
function moduleNameOf(path: string): Result<string, string> {
  const file = readHostFile(path);
  if (!file.ok) return err(`cannot read module ${file.error}`);
  const elf = parseModuleFile(file.value);
  if (!elf.ok) return err(`${quoteForMessage(path)}: ${elf.error.message}`);
  const info = readModinfo(elf.value);
  if (!info.ok) return err(`${quoteForMessage(path)}: ${info.error.message}`);
  if (!info.value.name) return err(`${quoteForMessage(path)}: .modinfo has no name`);
  return ok(info.value.name);
}

/** The addresses a step names, which must resolve before the step runs. */
function addressesOf(step: Step): AddressExpr[] {
  if (step.op === 'jump-label') return [step.key];
  if (step.op === 'static-call') return step.target === null ? [step.key] : [step.key, step.target];
  return 'addr' in step ? [step.addr] : [];
}

/** The message of anything thrown. */
function thrownText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/** Checks what the machine returned: a StepOutcome, or why not. */
function checkOutcome(v: unknown, method: string): StepOutcome {
  const o = v as Partial<StepOutcome> | null | undefined;
  if (typeof o !== 'object' || o === null || (o.outcome !== 'allowed' && o.outcome !== 'denied' && o.outcome !== 'error')) {
    return { outcome: 'error', reason: `machine.${method}() returned a malformed outcome: ${safeJson(v)}` };
  }
  return { outcome: o.outcome, reason: typeof o.reason === 'string' ? o.reason : String(o.reason ?? ''), ...(o.detail ? { detail: o.detail } : {}) };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
  } catch {
    return String(v);
  }
}

/** The machine's verdict mark, when it keeps one (and does not throw). */
function verdictMark(machine: MachineApi): number | undefined {
  try {
    const m = machine.verdictMark?.();
    return typeof m === 'number' ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A denied outcome with the verifier's reason added when the guest saw only a status: the
 * first denial the verifier recorded during the step (and how many more), unless the reason
 * already says it.
 */
function withVerifierReason(o: StepOutcome, machine: MachineApi, mark: number | undefined): StepOutcome {
  if (o.outcome !== 'denied' || mark === undefined) return o;
  let why: readonly string[] | undefined;
  try {
    why = machine.deniedSince?.(mark);
  } catch {
    return o;
  }
  if (!Array.isArray(why) || why.length === 0 || typeof why[0] !== 'string') return o;
  const first = why[0];
  if (o.reason.includes(first)) return o;
  const more = why.length > 1 ? ` (and ${why.length - 1} more denial${why.length > 2 ? 's' : ''})` : '';
  return { ...o, reason: `${o.reason}; verifier: ${first}${more}` };
}

type Timed<T> = { done: true; value: T } | { done: false };

/** Awaits `p` for at most `ms`; clears its timer either way. */
async function within<T>(p: Promise<T>, ms: number): Promise<Timed<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Timed<T>>((res) => {
    timer = setTimeout(() => res({ done: false }), ms);
  });
  try {
    return await Promise.race([p.then((value): Timed<T> => ({ done: true, value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs one step; never throws. `timedOut` says the machine may still be busy with it. */
async function runStep(step: Step, machine: MachineApi, timeoutMs: number): Promise<{ outcome: StepOutcome; timedOut: boolean }> {
  const performer = PERFORMERS[step.op] as unknown as Performer<StepKind>;
  const method = performer.method;
  for (const addr of addressesOf(step)) {
    let r: ReturnType<MachineApi['resolve']>;
    try {
      r = machine.resolve(addr);
    } catch (e) {
      return { outcome: { outcome: 'error', reason: `machine.resolve('${addr}') threw ${thrownText(e)}` }, timedOut: false };
    }
    // The machine is code we drive, not code we trust to be well-formed: check the shape.
    const res = r as Partial<{ ok: boolean; error: unknown }> | null | undefined;
    if (typeof res !== 'object' || res === null || res.ok !== true) {
      const why = typeof res === 'object' && res !== null && res.ok === false ? String(res.error) : `malformed answer ${safeJson(r)}`;
      return { outcome: { outcome: 'error', reason: `cannot resolve '${addr}': ${why}` }, timedOut: false };
    }
  }
  try {
    const mark = verdictMark(machine);
    const t = await within(
      Promise.resolve().then(() => performer.perform(step as StepOf<StepKind>, machine)),
      timeoutMs,
    );
    if (!t.done) {
      return { outcome: { outcome: 'error', reason: `machine.${method}() did not finish within ${timeoutMs / 1000} s` }, timedOut: true };
    }
    return { outcome: withVerifierReason(checkOutcome(t.value, method), machine, mark), timedOut: false };
  } catch (e) {
    return { outcome: { outcome: 'error', reason: `machine.${method}() threw ${thrownText(e)}` }, timedOut: false };
  }
}

/**
 * Runs every step of `scenario` on `machine` in order, calls `onStep` after each, then
 * disposes the machine. Resolves to the result `heki run --json` prints; never rejects.
 */
export async function runScenario(scenario: Scenario, machine: MachineApi, onStep?: StepObserver, options: RunOptions = {}): Promise<ScenarioResult> {
  const stepTimeout = options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
  const disposeTimeout = options.disposeTimeoutMs ?? DEFAULT_DISPOSE_TIMEOUT_MS;
  const warn = (m: string): void => {
    try {
      options.onWarning?.(m);
    } catch {
      // A warning sink that throws has nowhere left to report to.
    }
  };
  const results: StepResult[] = [];
  let stuck: string | undefined;
  for (const step of scenario.steps) {
    let outcome: StepOutcome;
    try {
      options.onStepStart?.(step);
    } catch (e) {
      warn(`step observer threw ${thrownText(e)}`);
    }
    if (stuck !== undefined) {
      outcome = { outcome: 'error', reason: `not run: ${stuck}` };
    } else {
      const r = await runStep(step, machine, stepTimeout);
      outcome = r.outcome;
      if (r.timedOut) stuck = `step ${step.index} (${step.op}) timed out and the machine's state is unknown`;
    }
    const result = stepResult(step.index, step.op, outcome.outcome, outcome.reason, step.expect);
    results.push(result);
    try {
      onStep?.(result, step, outcome);
    } catch (e) {
      warn(`step observer threw ${thrownText(e)}`);
    }
  }
  if (options.beforeDispose && stuck === undefined) {
    try {
      const b = await within(
        Promise.resolve().then(() => options.beforeDispose?.(machine)),
        disposeTimeout,
      );
      if (!b.done) warn(`reading the machine's final state did not finish within ${disposeTimeout / 1000} s`);
    } catch (e) {
      warn(`reading the machine's final state threw ${thrownText(e)}`);
    }
  }
  try {
    const d = await within(
      Promise.resolve().then(() => machine.dispose()),
      disposeTimeout,
    );
    if (!d.done) warn(`machine.dispose() did not finish within ${disposeTimeout / 1000} s`);
  } catch (e) {
    warn(`machine.dispose() threw ${thrownText(e)}`);
  }
  return scenarioResult(scenario.name, results);
}
