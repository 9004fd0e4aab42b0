/**
 * Static calls (kernel/static_call_inline.c, CONFIG_HAVE_STATIC_CALL_INLINE):
 * `static_call_update(name, func)` points the key's trampoline `__SCT__<name>` and every one of
 * its call sites at `func`, through the authenticated text-poke path, as one batch, so the
 * verifier sees the whole key move at once (its static-call plugin requires that).
 *
 * The bytes are 6.1's `__static_call_transform()` (shared/x86/patch-encodings.ts
 * `encodeStaticCall`). Before patching, each instruction is checked as
 * `__static_call_validate()` does: the trampoline must carry its `ud1` signature and hold a
 * `jmp` or a return, a call site a `call`, NOP5 or the return0 xor, a tail-call site a `jmp`
 * or a return; anything else means the text is not what the kernel thinks, and nothing is
 * sent.
 *
 * Not modelled: `static_call_init()` at boot (the sites keep the compiler's `call __SCT__<name>`
 * until the first update; the trampoline makes that equivalent), static-call sites in modules.
 */
import {
  NOP5,
  RET5,
  XOR5RAX,
  bytesEqual,
  decodePatchInsn,
  encodeStaticCall,
  formatBytes,
  type StaticCallRole,
  type StaticCallSymbols,
} from '../../shared/x86/patch-encodings.ts';
import type { PatchRequest } from '../../shared/heki-descriptors.ts';
import type { TextPoker } from './text-poker.ts';

/** `ud1 %esp, %ecx`, the signature after each trampoline's jump (`tramp_ud`). */
const TRAMP_SIGNATURE = Uint8Array.of(0x0f, 0xb9, 0xcc);

/** A static call key of the kernel. */
export interface StaticCallKeyEntry {
  /** Address of `__SCK__<name>`. */
  readonly key: bigint;
  /** The static call's name. */
  readonly name: string;
  /** Address of `__SCT__<name>`. */
  readonly trampoline: bigint;
}

/** A live static call site. */
export interface StaticCallSiteEntry {
  readonly site: bigint;
  readonly key: bigint;
  /** A tail call (`jmp`). */
  readonly tail: boolean;
}

/** What an update did. `stage` says who refused: the guest's own checks, or the hypervisor. */
export type StaticCallResult =
  | { readonly ok: true; readonly sites: number; readonly patches: number; readonly batches: number }
  | {
      readonly ok: false;
      readonly stage: 'guest' | 'hypervisor';
      readonly reason: string;
      readonly sites: number;
      readonly denied: readonly number[];
      readonly applied: number;
    };

interface KeyState extends StaticCallKeyEntry {
  readonly sites: StaticCallSiteEntry[];
  /** The function last set by update (null: NULL), undefined before the first update. */
  func: bigint | null | undefined;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Whether `bytes` are a form `role` may hold (`__static_call_validate()`). */
function validInsn(role: StaticCallRole, bytes: Uint8Array): boolean {
  const k = decodePatchInsn(0n, bytes).kind;
  if (role === 'call') return k === 'call32' || bytesEqual(bytes, NOP5) || bytesEqual(bytes, XOR5RAX);
  return k === 'jmp32' || bytesEqual(bytes, RET5);
}

/** The kernel's static calls. */
export class StaticCalls {
  readonly #keys = new Map<bigint, KeyState>();

  constructor(
    private readonly poker: TextPoker,
    /** Reads kernel text (text is readable); undefined when it cannot. */
    private readonly read: (va: bigint, len: number) => Uint8Array | undefined,
    /** `__static_call_return0` and, when the kernel uses the return thunk, `__x86_return_thunk`. */
    private readonly symbols: StaticCallSymbols = {},
  ) {}

  /** Adds keys (before their sites). */
  addKeys(keys: Iterable<StaticCallKeyEntry>): void {
    for (const k of keys) if (!this.#keys.has(k.key)) this.#keys.set(k.key, { ...k, sites: [], func: undefined });
  }

  /** Adds live sites. A site of a key not added is a broken invariant (the image pairs them). */
  addSites(sites: Iterable<StaticCallSiteEntry>): void {
    for (const s of sites) {
      const k = this.#keys.get(s.key);
      if (!k) throw new Error(`static call site ${hex(s.site)} uses unknown key ${hex(s.key)}`);
      k.sites.push(s);
    }
  }

  /** The key at `key`, or undefined. */
  key(key: bigint): StaticCallKeyEntry | undefined {
    const k = this.#keys.get(key);
    return k && { key: k.key, name: k.name, trampoline: k.trampoline };
  }

  /** Addresses of every key. */
  keys(): bigint[] {
    return [...this.#keys.keys()];
  }

  /** The live sites of `key`. */
  sites(key: bigint): readonly StaticCallSiteEntry[] {
    return this.#keys.get(key)?.sites ?? [];
  }

  /** The function the last update set (null: NULL), or undefined before any. */
  current(key: bigint): bigint | null | undefined {
    return this.#keys.get(key)?.func;
  }

  /** Records the function a restored kernel's last update set (the text already holds it). */
  restoreCurrent(key: bigint, func: bigint | null): void {
    const k = this.#keys.get(key);
    if (k) k.func = func;
  }

  /** static_call_update(key, target): one batch with the trampoline and every live site. */
  async update(key: bigint, target: bigint | null): Promise<StaticCallResult> {
    const k = this.#keys.get(key);
    const refuse = (reason: string, sites = 0): StaticCallResult => ({ ok: false, stage: 'guest', reason, sites, denied: [], applied: 0 });
    if (!k) return refuse(`no static call key at ${hex(key)}`);
    const patches: PatchRequest[] = [];
    const tramp = this.read(k.trampoline, 8);
    if (tramp === undefined) return refuse(`trampoline __SCT__${k.name} at ${hex(k.trampoline)} is not readable`, k.sites.length);
    if (!bytesEqual(tramp.subarray(5), TRAMP_SIGNATURE))
      return refuse(`trampoline __SCT__${k.name} at ${hex(k.trampoline)}: signature fail (${formatBytes(tramp)})`, k.sites.length);
    const todo: Array<{ at: bigint; role: StaticCallRole; current: Uint8Array }> = [{ at: k.trampoline, role: 'trampoline', current: tramp.slice(0, 5) }];
    for (const s of k.sites) {
      const cur = this.read(s.site, 5);
      if (cur === undefined) return refuse(`static call site ${hex(s.site)} of __SCK__${k.name} is not readable`, k.sites.length);
      todo.push({ at: s.site, role: s.tail ? 'tail' : 'call', current: cur.slice() });
    }
    for (const t of todo) {
      if (!validInsn(t.role, t.current)) {
        return refuse(`unexpected static_call insn ${formatBytes(t.current)} at ${hex(t.at)} (${t.role} of __SCK__${k.name})`, k.sites.length);
      }
      let want: Uint8Array;
      try {
        want = encodeStaticCall(t.at, t.role, target, this.symbols);
      } catch (e) {
        return refuse(e instanceof Error ? e.message : String(e), k.sites.length);
      }
      patches.push({ kind: 'static-call', site: t.at, oldBytes: t.current, newBytes: want });
    }
    const r = await this.poker.poke(patches);
    if (!r.ok) return { ok: false, stage: 'hypervisor', reason: r.reason, sites: k.sites.length, denied: r.denied, applied: r.applied };
    k.func = target;
    return { ok: true, sites: k.sites.length, patches: r.patches, batches: r.batches };
  }
}
