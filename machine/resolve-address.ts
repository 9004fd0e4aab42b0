/**
 * Address expressions of scenario steps (`0xffffffff81000000`, `symbol+0x10`), resolved
 * against the running image's System.map, then against the exports of loaded modules.
 */
import { resolveSymbolExpression } from '../shared/kernel-image/system-map.ts';
import type { AddressExpr } from './machine-api.ts';
import type { MachineParts } from './machine-parts.ts';

/** `symbol[+off]` or `symbol[-off]`, as a module export is written. */
const MODULE_SYMBOL = /^\s*([A-Za-z_.$][\w.$]*)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|[0-9]+))?\s*$/;

/** The address `addr` names on `p`, or the System.map's reason why none. */
export function resolveAddress(p: Pick<MachineParts, 'image' | 'kernel'>, addr: AddressExpr): { ok: true; value: bigint } | { ok: false; error: string } {
  const r = resolveSymbolExpression(p.image.systemMap, addr);
  if (r.ok) return r;
  const m = MODULE_SYMBOL.exec(addr);
  if (m && p.kernel) {
    const base = p.kernel.modules.resolve(m[1]!);
    if (base !== undefined) {
      const off = m[3] ? BigInt(m[3]) : 0n;
      return { ok: true, value: m[2] === '-' ? base - off : base + off };
    }
  }
  return { ok: false, error: r.error.message };
}
