/**
 * What the touch-up passes need besides the tables and the text: the CPU (the kernel's
 * capability words, CPU counts, command line) and the addresses of the kernel's own thunks,
 * stubs and tables they patch calls to. Both the guest (for its own text) and the verifier
 * (for its prediction) build one; the verifier from the signed manifest and the VMM's CPU
 * model, never from the guest.
 */
import { X86_FEATURE, cpuHas } from '../cpu-model.ts';

/** The part of a CPU model the touch-ups read. */
export interface TouchupCpu {
  /** `x86_capability[24]` as the kernel computed it (after boot: synthetic features included). */
  readonly capabilities: readonly number[];
  readonly presentCpus: number;
  readonly possibleCpus: number;
  readonly cmdline: string;
}

/** Kernel addresses the passes generate code towards. */
export interface TouchupSymbols {
  /** `__x86_indirect_thunk_array` (retpoline thunks, 32 bytes each, by register). */
  readonly indirectThunkArray: bigint;
  /** `__x86_return_thunk`, the target every `.return_sites` entry jumps to in the file. */
  readonly returnThunk: bigint;
  /** What `x86_return_thunk` points at on this CPU (arch/x86/kernel/cpu/bugs.c). */
  readonly x86ReturnThunk: bigint;
  /** `its_return_thunk`, when the kernel has it. */
  readonly itsReturnThunk: bigint | undefined;
  /** `_paravirt_nop`. */
  readonly paravirtNop: bigint | undefined;
  /** `paravirt_BUG`. */
  readonly paravirtBug: bigint | undefined;
  /** `__static_call_return0`. */
  readonly staticCallReturn0: bigint | undefined;
  /** `__static_call_return`. */
  readonly staticCallReturn: bigint | undefined;
  /** The function `pv_ops[type]` holds at boot (0n for NULL), undefined outside the table. */
  pvOp(type: number): bigint | undefined;
  /** A static call key's function as the file initialises it (null for NULL), undefined for an unknown key. */
  staticCallFunc(key: bigint): bigint | null | undefined;
  /** The trampoline (`__SCT__<name>`) of the static call whose key (`__SCK__<name>`) is at `key`. */
  staticCallTrampoline(key: bigint): bigint | undefined;
  /** The key of the static call whose trampoline is at `tramp` (`tramp_key_lookup()`). */
  staticCallKeyOfTrampoline(tramp: bigint): bigint | undefined;
  /** Any other kernel symbol the passes name (`__cond_resched`, `__SCK__cond_resched`, ...). */
  symbol(name: string): bigint | undefined;
  /** `kernel_text_address()`: whether `addr` is kernel or module text. */
  isKernelText(addr: bigint): boolean;
}

/** The CPU and the symbols. */
export interface TouchupContext {
  readonly cpu: TouchupCpu;
  readonly symbols: TouchupSymbols;
}

/** `boot_cpu_has()` / `cpu_feature_enabled()` on the context's words. */
export function has(ctx: TouchupContext, bit: number): boolean {
  return cpuHas(ctx.cpu, bit);
}

/** Whether the command line has the flag parameter `name` (`noreplace-smp`), as a word of its own. */
export function cmdlineHas(cmdline: string, name: string): boolean {
  return cmdline.split(/\s+/).includes(name);
}

/** `cpu_wants_rethunk_at(addr)`. */
export function cpuWantsRethunkAt(ctx: TouchupContext, addr: bigint): boolean {
  if (!has(ctx, X86_FEATURE.RETHUNK)) return false;
  if (ctx.symbols.x86ReturnThunk !== ctx.symbols.itsReturnThunk) return true;
  return (addr & 0x20n) === 0n;
}
