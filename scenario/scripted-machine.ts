/**
 * A {@link MachineApi} that answers from a script instead of running a kernel: every call is
 * recorded, and its outcome comes from a function the caller gives (default: allowed). For
 * tests of the scenario runner and of `heki run`, and for tools that exercise a scenario's
 * flow without a machine. Addresses resolve against a small symbol table.
 */
import type { AddressExpr, KexecOptions, MachineApi, StepOutcome } from '../machine/machine-api.ts';

/** A recorded call: the method and its arguments (byte arrays copied). */
export interface MachineCall {
  readonly method: Exclude<keyof MachineApi, 'resolve' | 'dispose'>;
  readonly args: readonly unknown[];
}

/** How a {@link ScriptedMachine} behaves. */
export interface ScriptedMachineOptions {
  /** Symbols `resolve` knows (default: `_stext` and `init_task` at their Debian 6.1 addresses). */
  readonly symbols?: Readonly<Record<string, bigint>>;
  /** The outcome of each call (default: allowed); may throw or return a promise. */
  readonly answer?: (call: MachineCall) => StepOutcome | Promise<StepOutcome>;
  /** What dispose() does besides counting (default: nothing). */
  readonly onDispose?: () => void | Promise<void>;
}

/** The default symbol table. */
export const SCRIPTED_SYMBOLS: Readonly<Record<string, bigint>> = {
  _stext: 0xffff_ffff_8100_0000n,
  init_task: 0xffff_ffff_82a1_aa40n,
};

/** A scripted machine; see the file comment. */
export class ScriptedMachine implements MachineApi {
  /** Every call, in order. */
  readonly calls: MachineCall[] = [];
  /** How many times dispose() was called. */
  disposed = 0;
  readonly #symbols: Readonly<Record<string, bigint>>;
  readonly #answer: (call: MachineCall) => StepOutcome | Promise<StepOutcome>;
  readonly #onDispose: (() => void | Promise<void>) | undefined;

  constructor(options: ScriptedMachineOptions = {}) {
    this.#symbols = options.symbols ?? SCRIPTED_SYMBOLS;
    this.#answer = options.answer ?? ((c) => ({ outcome: 'allowed', reason: `${c.method}: done` }));
    this.#onDispose = options.onDispose;
  }

  #call(method: MachineCall['method'], ...args: unknown[]): Promise<StepOutcome> {
    const call: MachineCall = { method, args: args.map((a) => (a instanceof Uint8Array ? a.slice() : a)) };
    this.calls.push(call);
    return Promise.resolve().then(() => this.#answer(call));
  }

  boot(): Promise<StepOutcome> {
    return this.#call('boot');
  }
  loadModule(path: string): Promise<StepOutcome> {
    return this.#call('loadModule', path);
  }
  unloadModule(name: string): Promise<StepOutcome> {
    return this.#call('unloadModule', name);
  }
  ftrace(op: 'enable' | 'disable', target: string): Promise<StepOutcome> {
    return this.#call('ftrace', op, target);
  }
  jumpLabel(op: 'enable' | 'disable', key: AddressExpr): Promise<StepOutcome> {
    return this.#call('jumpLabel', op, key);
  }
  staticCall(key: AddressExpr, target: AddressExpr | null): Promise<StepOutcome> {
    return this.#call('staticCall', key, target);
  }
  setMemory(addr: AddressExpr, pages: number, perm: 'ro' | 'rw' | 'x' | 'nx' | 'rox'): Promise<StepOutcome> {
    return this.#call('setMemory', addr, pages, perm);
  }
  textPoke(addr: AddressExpr, bytes: Uint8Array, kind?: 'ftrace' | 'jump-label' | 'static-call' | 'kprobe'): Promise<StepOutcome> {
    return this.#call('textPoke', addr, bytes, kind);
  }
  kprobe(addr: AddressExpr, op: 'install' | 'remove'): Promise<StepOutcome> {
    return this.#call('kprobe', addr, op);
  }
  bpfJit(name: string, image: Uint8Array, signed: boolean): Promise<StepOutcome> {
    return this.#call('bpfJit', name, image, signed);
  }
  read(addr: AddressExpr, len: number, mode: 'kernel' | 'user'): Promise<StepOutcome> {
    return this.#call('read', addr, len, mode);
  }
  write(addr: AddressExpr, bytes: Uint8Array, mode: 'kernel' | 'user'): Promise<StepOutcome> {
    return this.#call('write', addr, bytes, mode);
  }
  exec(addr: AddressExpr, mode: 'kernel' | 'user'): Promise<StepOutcome> {
    return this.#call('exec', addr, mode);
  }
  writeCr(cr: 0 | 3 | 4, change: { value?: bigint; set?: bigint; clear?: bigint }): Promise<StepOutcome> {
    return this.#call('writeCr', cr, { ...change });
  }
  writeMsr(msr: number, value: bigint): Promise<StepOutcome> {
    return this.#call('writeMsr', msr, value);
  }
  hypercall(nr: number, args: readonly bigint[]): Promise<StepOutcome> {
    return this.#call('hypercall', nr, [...args]);
  }
  reboot(): Promise<StepOutcome> {
    return this.#call('reboot');
  }
  kexec(options: KexecOptions): Promise<StepOutcome> {
    return this.#call('kexec', { ...options });
  }
  panic(): Promise<StepOutcome> {
    return this.#call('panic');
  }
  hibernate(): Promise<StepOutcome> {
    return this.#call('hibernate');
  }
  resume(options: { readonly tamper?: boolean } = {}): Promise<StepOutcome> {
    return this.#call('resume', { ...options });
  }
  migrate(options: { readonly tamper?: boolean } = {}): Promise<StepOutcome> {
    return this.#call('migrate', { ...options });
  }
  cpuOnline(): Promise<StepOutcome> {
    return this.#call('cpuOnline');
  }
  saveMemory(addr: AddressExpr, len: number, out: string): Promise<StepOutcome> {
    return this.#call('saveMemory', addr, len, out);
  }

  /** Resolves `0x...`, `symbol`, `symbol+0x..` and `symbol-0x..` against the symbol table. */
  resolve(addr: AddressExpr): { ok: true; value: bigint } | { ok: false; error: string } {
    if (/^0x[0-9a-f]+$/i.test(addr)) return { ok: true, value: BigInt(addr) };
    const m = /^([^+-]+)(?:([+-])(0x[0-9a-f]+|[0-9]+))?$/i.exec(addr);
    const base = m ? this.#symbols[m[1]!] : undefined;
    if (!m || base === undefined) return { ok: false, error: `unknown symbol '${m?.[1] ?? addr}'` };
    const off = m[3] === undefined ? 0n : BigInt(m[3]);
    return { ok: true, value: m[2] === '-' ? base - off : base + off };
  }

  async dispose(): Promise<void> {
    this.disposed++;
    await this.#onDispose?.();
  }
}
