/**
 * System.map: the `nm -n` listing of vmlinux (`ffffffff81000000 T _stext`), parsed into
 * name and address lookups.
 *
 * Names repeat (local symbols of different files, e.g. 1,125 names in the fixture map), so
 * every entry is kept; a lookup by name returns the first global (upper-case type) entry,
 * else the first entry. Addresses exceed 2^53 and are bigints.
 */

import { hex } from '../addr.ts';
import { err, ok, type Result } from '../result.ts';

/** One line of System.map. */
export interface MapSymbol {
  /** Symbol name. */
  readonly name: string;
  /** Its address. */
  readonly address: bigint;
  /** The `nm` type letter (T text, D data, R read-only, B bss, A absolute, W weak, ...). */
  readonly type: string;
  /** 1-based line number in the file. */
  readonly line: number;
}

/** Why a System.map (or an expression over it) was rejected. */
export interface SystemMapError {
  readonly kind: 'syntax' | 'bad-address' | 'bad-type' | 'empty' | 'unknown-symbol' | 'bad-expression';
  readonly message: string;
  /** The 1-based line number, for parse errors. */
  readonly line?: number;
}

/** The address of a symbol plus an offset, as in `name+0xoff`. */
export interface SymbolOffset {
  readonly symbol: MapSymbol;
  readonly offset: bigint;
}

/** A parsed System.map. */
export interface SystemMap {
  /** Every entry, in file order. */
  readonly symbols: readonly MapSymbol[];
  /** Every entry sorted by address (file order among equal addresses). */
  readonly byAddress: readonly MapSymbol[];
  /** The first global entry called `name`, else the first entry, else undefined. */
  lookup(name: string): MapSymbol | undefined;
  /** Every entry called `name`, in file order. */
  all(name: string): readonly MapSymbol[];
  /** `lookup(name)?.address`. */
  address(name: string): bigint | undefined;
  /**
   * The symbol at or below `addr` (the last one by address, first in file order among
   * equals) and the offset into it. Undefined below the first symbol or past the last.
   */
  containing(addr: bigint): SymbolOffset | undefined;
  /** `name+0xoff` (or `name` at offset 0) for `addr`, or its hex when no symbol contains it. */
  symbolize(addr: bigint): string;
  /** Evaluates `name`, `name+0x10`, `name-16` or a bare hex/decimal address. */
  resolve(expr: string): Result<bigint, SystemMapError>;
}

const LINE_RE = /^([0-9a-fA-F]{1,16})\s+(\S)\s+(\S+)\s*$/;
const TYPE_RE = /^[A-Za-z?-]$/;

function mapError(kind: SystemMapError['kind'], message: string, line?: number): SystemMapError {
  return line === undefined ? { kind, message: `System.map: ${message}` } : { kind, message: `System.map line ${line}: ${message}`, line };
}

function isGlobal(type: string): boolean {
  return type >= 'A' && type <= 'Z';
}

/** Parses System.map text. Blank lines are skipped; anything else malformed is an error. */
export function parseSystemMap(text: string): Result<SystemMap, SystemMapError> {
  const symbols: MapSymbol[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    if (raw.trim() === '') continue;
    const m = LINE_RE.exec(raw.trimStart());
    if (m === null) {
      const fields = raw.trim().split(/\s+/);
      if (fields.length === 3 && !/^[0-9a-fA-F]+$/.test(fields[0]!)) return err(mapError('bad-address', `bad address "${fields[0]}"`, lineNo));
      if (fields.length === 3 && /^[0-9a-fA-F]{17,}$/.test(fields[0]!))
        return err(mapError('bad-address', `address "${fields[0]}" is wider than 64 bits`, lineNo));
      if (fields.length === 3 && fields[1]!.length !== 1) return err(mapError('bad-type', `bad symbol type "${fields[1]}" (one letter expected)`, lineNo));
      return err(mapError('syntax', `expected "<address> <type> <name>", got "${raw.length > 80 ? raw.slice(0, 80) + '...' : raw}"`, lineNo));
    }
    const type = m[2]!;
    if (!TYPE_RE.test(type)) return err(mapError('bad-type', `bad symbol type "${type}"`, lineNo));
    symbols.push({ name: m[3]!, address: BigInt(`0x${m[1]}`), type, line: lineNo });
  }
  if (symbols.length === 0) return err(mapError('empty', 'no symbols'));
  return ok(buildSystemMap(symbols));
}

function buildSystemMap(symbols: MapSymbol[]): SystemMap {
  const byName = new Map<string, MapSymbol[]>();
  for (const s of symbols) {
    const list = byName.get(s.name);
    if (list === undefined) byName.set(s.name, [s]);
    else list.push(s);
  }
  const preferred = new Map<string, MapSymbol>();
  for (const [name, list] of byName) preferred.set(name, list.find((s) => isGlobal(s.type)) ?? list[0]!);

  // `nm -n` writes the map in address order, so a map is usually sorted already; otherwise
  // Array.prototype.sort is stable, so equal addresses keep file order.
  let sorted = true;
  for (let i = 1; i < symbols.length && sorted; i++) sorted = symbols[i - 1]!.address <= symbols[i]!.address;
  const byAddress = sorted ? symbols : [...symbols].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const last = byAddress[byAddress.length - 1]!;

  /** Index of the first entry whose address is > addr. */
  function upperBound(addr: bigint): number {
    let lo = 0;
    let hi = byAddress.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (byAddress[mid]!.address <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  const map: SystemMap = {
    symbols,
    byAddress,
    lookup: (name) => preferred.get(name),
    all: (name) => byName.get(name) ?? [],
    address: (name) => preferred.get(name)?.address,
    containing(addr) {
      const ub = upperBound(addr);
      if (ub === 0) return undefined;
      if (ub === byAddress.length && addr !== last.address) return undefined;
      // Walk back to the first (file order) of the entries sharing that address.
      const at = byAddress[ub - 1]!.address;
      let i = ub - 1;
      while (i > 0 && byAddress[i - 1]!.address === at) i--;
      const symbol = byAddress[i]!;
      return { symbol, offset: addr - symbol.address };
    },
    symbolize(addr) {
      const c = map.containing(addr);
      if (c === undefined) return hex(addr);
      return c.offset === 0n ? c.symbol.name : `${c.symbol.name}+${hex(c.offset)}`;
    },
    resolve: (expr) => resolveSymbolExpression(map, expr),
  };
  return map;
}

const EXPR_RE = /^\s*([A-Za-z_.$][\w.$]*|0x[0-9a-fA-F]+|[0-9]+)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|[0-9]+))?\s*$/;

/**
 * Evaluates `symbol`, `symbol+0xoff`, `symbol-off` or a plain number against `map`.
 * The result must stay within 0..2^64-1.
 */
export function resolveSymbolExpression(map: SystemMap, expr: string): Result<bigint, SystemMapError> {
  const m = EXPR_RE.exec(expr);
  if (m === null) return err(mapError('bad-expression', `cannot parse "${expr}" (expected symbol, symbol+0xoff or an address)`));
  const head = m[1]!;
  let base: bigint;
  if (/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(head)) {
    base = BigInt(head);
  } else {
    const a = map.address(head);
    if (a === undefined) return err(mapError('unknown-symbol', `unknown symbol "${head}" in "${expr}"`));
    base = a;
  }
  let value = base;
  if (m[2] !== undefined) {
    const off = BigInt(m[3]!);
    value = m[2] === '+' ? base + off : base - off;
  }
  if (value < 0n || value >= 1n << 64n) return err(mapError('bad-expression', `"${expr}" evaluates outside 0..2^64-1`));
  return ok(value);
}
