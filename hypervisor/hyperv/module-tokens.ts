/**
 * The module tokens of the Hyper-V personality. LVBS's VALIDATE_MODULE answers a token and
 * FREE_MODULE_INIT / UNLOAD_MODULE name the module by it ([vsm.rs]
 * `ModuleMemoryMetadataMap::gen_unique_key()`: a per-boot counter from 0); the core's
 * Authenticator names modules by their name. This map joins the two, one per VM core.
 *
 * INVARIANT: a token names at most one module and is never reused within a core's life; a
 * token whose module the Authenticator no longer has (unloaded, or gone with a reset) is
 * refused by the handlers, as LVBS refuses an unknown token (-EINVAL).
 */
import type { VmCore } from '../core/vm-core.ts';

interface Tokens {
  next: number;
  readonly names: Map<number, string>;
}

const TOKENS = new WeakMap<VmCore, Tokens>();

function tokensOf(core: VmCore): Tokens {
  let t = TOKENS.get(core);
  if (!t) {
    t = { next: 0, names: new Map() };
    TOKENS.set(core, t);
  }
  return t;
}

/** Registers module `name` and returns its new token. */
export function issueModuleToken(core: VmCore, name: string): number {
  const t = tokensOf(core);
  const token = t.next++;
  t.names.set(token, name);
  return token;
}

/** The module a token names, or undefined for a token never issued or already dropped. */
export function moduleOfToken(core: VmCore, token: bigint): string | undefined {
  if (token < 0n || token > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return tokensOf(core).names.get(Number(token));
}

/** Forgets a token (its module was unloaded). */
export function dropModuleToken(core: VmCore, token: bigint): void {
  tokensOf(core).names.delete(Number(token));
}
