/**
 * The value syntaxes of scenario files, each a pure string parser: integers, hex byte
 * strings, address expressions, control-register bit names, MSR and hypercall names, ftrace
 * targets. Each returns a typed result whose error is a phrase ("must be ..., got '...'")
 * that the caller prefixes with the key it was reading.
 */
import { err, ok, type Result } from '../shared/result.ts';
import { CR0, CR4, MSR } from '../shared/x86/cpu.ts';
import { HC } from '../shared/abi.ts';
import type { AddressExpr } from '../machine/machine-api.ts';

/** The largest 64-bit unsigned value. */
export const U64_MAX = (1n << 64n) - 1n;

const HEX_INT = /^0x[0-9a-f]+(?:_[0-9a-f]+)*$/i;
const DEC_INT = /^[0-9]+(?:_[0-9]+)*$/;

/** Shows a value in a message, shortened when long. */
export function quote(text: string): string {
  return `'${text.length > 40 ? `${text.slice(0, 37)}...` : text}'`;
}

/**
 * An unsigned integer written in decimal (`13`) or hex (`0xffffffff81000000`), `_` allowed
 * between digits, at most `max` (default 2^64-1).
 */
export function parseInteger(text: string, max: bigint = U64_MAX): Result<bigint, string> {
  const t = text.trim();
  if (!HEX_INT.test(t) && !DEC_INT.test(t)) {
    return err(`must be an integer (decimal, or hex with 0x), got ${quote(text)}`);
  }
  const v = BigInt(t.replaceAll('_', ''));
  if (v > max) return err(`must be at most 0x${max.toString(16)}, got ${quote(text)}`);
  return ok(v);
}

/** An integer in [min, max] that fits a JS number (counts, lengths). */
export function parseCount(text: string, min: number, max: number): Result<number, string> {
  const v = parseInteger(text, BigInt(max));
  if (!v.ok) return v.error.startsWith('must be at most') ? err(`must be between ${min} and ${max}, got ${quote(text)}`) : v;
  if (v.value < BigInt(min)) return err(`must be between ${min} and ${max}, got ${quote(text)}`);
  return ok(Number(v.value));
}

/**
 * Hex bytes: pairs of hex digits, optionally grouped with spaces (`90`, `0f1f440000`,
 * `0f 1f 44 00 00`). No `0x` prefix: a byte string has no numeric value or endianness.
 */
export function parseHexBytes(text: string, maxBytes = 1 << 20): Result<Uint8Array, string> {
  const t = text.trim();
  const hint = `must be hex bytes like "90" or "0f 1f 44 00 00"`;
  if (t === '') return err(`${hint}, got an empty string`);
  if (/^0x/i.test(t)) return err(`${hint} (without 0x), got ${quote(text)}`);
  const groups = t.split(/\s+/);
  for (const g of groups) {
    if (!/^[0-9a-f]+$/i.test(g)) return err(`${hint}, got ${quote(text)}`);
    if (g.length % 2 !== 0) return err(`${hint}: ${quote(g)} has an odd number of hex digits`);
  }
  const hex = groups.join('');
  if (hex.length / 2 > maxBytes) return err(`must be at most ${maxBytes} bytes, got ${hex.length / 2}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return ok(out);
}

/** A kernel symbol name as System.map spells it (`_stext`, `do_one_initcall.cold`). */
const SYMBOL = /^[A-Za-z_.][A-Za-z0-9_.$]*$/;

/**
 * An address expression: hex (`0xffffffff81000000`) or `symbol`, `symbol+offset`,
 * `symbol-offset` with a decimal or hex offset (spaces around the sign allowed). Returns the
 * canonical spelling handed to the machine: lowercase `0x...` for a number, `symbol+0x10`
 * (hex offset, no spaces) for a symbol.
 */
export function parseAddressExpr(text: string): Result<AddressExpr, string> {
  const t = text.trim();
  const bad = err(`must be hex (0x...) or symbol[+offset], got ${quote(text)}`);
  if (/^0x/i.test(t)) {
    const v = parseInteger(t);
    return v.ok ? ok(`0x${v.value.toString(16)}`) : v.error.startsWith('must be at most') ? err(`is above 2^64-1: ${quote(text)}`) : bad;
  }
  const m = /^([^\s+-]+)\s*(?:([+-])\s*(\S+))?$/.exec(t);
  if (!m || !SYMBOL.test(m[1]!)) return bad;
  const symbol = m[1]!;
  if (/^[0-9a-f]{8,16}$/i.test(symbol) && /[0-9]/.test(symbol)) {
    return err(`looks like a hex address without 0x: write 0x${symbol} (got ${quote(text)})`);
  }
  if (m[2] === undefined) return ok(symbol);
  const off = parseInteger(m[3]!);
  if (!off.ok) return err(`has a bad offset in ${quote(text)}: ${off.error}`);
  return ok(off.value === 0n ? symbol : `${symbol}${m[2]}0x${off.value.toString(16)}`);
}

/** What ftrace targets: `all`, a glob over function names (`tcp_*`), or one function. */
export function parseFtraceTarget(text: string): Result<string, string> {
  const t = text.trim();
  if (t === 'all' || /^[A-Za-z0-9_.$*?[\]!-]+$/.test(t)) return ok(t);
  return err(`must be all, a glob (tcp_*) or a function name, got ${quote(text)}`);
}

/** A module name as the kernel knows it (`virtio_net`). */
export function parseModuleName(text: string): Result<string, string> {
  const t = text.trim();
  if (/^[A-Za-z0-9_-]{1,55}$/.test(t)) return ok(t);
  return err(`must be a module name like virtio_net (letters, digits, _ and -, at most 55), got ${quote(text)}`);
}

/** The named bits of each control register a scenario may move to. */
export const CR_BITS: Readonly<Record<0 | 3 | 4, Readonly<Record<string, bigint>>>> = { 0: CR0, 3: {}, 4: CR4 };

/**
 * A set of CR bits: an integer mask, or bit names (`SMEP`, `SMEP|SMAP`, any case) from
 * shared/x86/cpu.ts. `items` is one scalar or the items of a list; each may be either form.
 */
export function parseCrBits(cr: 0 | 3 | 4, items: readonly string[]): Result<bigint, string> {
  const table = CR_BITS[cr];
  let mask = 0n;
  for (const item of items) {
    for (const part of item.split('|').map((p) => p.trim())) {
      if (/^[0-9]/.test(part)) {
        const v = parseInteger(part);
        if (!v.ok) return v;
        mask |= v.value;
        continue;
      }
      const bit = table[part.toUpperCase()];
      if (bit === undefined) {
        const known = Object.keys(table);
        return err(
          known.length === 0
            ? `names a bit (${quote(part)}) but CR${cr} has no named bits; give a hex mask`
            : `has an unknown CR${cr} bit ${quote(part)} (known: ${known.join(', ')})`,
        );
      }
      mask |= bit;
    }
  }
  return ok(mask);
}

/** MSR names accepted besides numbers: shared/x86/cpu.ts's table, plus spellings Linux uses. */
const MSR_ALIASES: Readonly<Record<string, number>> = {
  ...MSR,
  IA32_EFER: MSR.EFER,
  IA32_LSTAR: MSR.LSTAR,
  IA32_STAR: MSR.STAR,
  IA32_CSTAR: MSR.CSTAR,
  IA32_FMASK: MSR.SYSCALL_MASK,
  IA32_FS_BASE: MSR.FS_BASE,
  IA32_GS_BASE: MSR.GS_BASE,
  IA32_KERNEL_GS_BASE: MSR.KERNEL_GS_BASE,
  SYSENTER_CS: MSR.IA32_SYSENTER_CS,
  SYSENTER_ESP: MSR.IA32_SYSENTER_ESP,
  SYSENTER_EIP: MSR.IA32_SYSENTER_EIP,
};

/** An MSR: a name (`LSTAR`, `MSR_LSTAR`, `IA32_LSTAR`, any case) or a 32-bit number. */
export function parseMsr(text: string): Result<number, string> {
  const t = text.trim();
  if (/^[0-9]/.test(t)) {
    const v = parseInteger(t, 0xffff_ffffn);
    return v.ok ? ok(Number(v.value)) : v;
  }
  const n = MSR_ALIASES[t.toUpperCase().replace(/^MSR_/, '')];
  if (n !== undefined) return ok(n);
  return err(`must be an MSR number or one of ${Object.keys(MSR).join(', ')}, got ${quote(text)}`);
}

/** A hypercall number: an integer, or a name from shared/abi.ts (`KVM_HC_LOCK_CR_UPDATE`, `LOCK_CR_UPDATE`). */
export function parseHypercallNr(text: string): Result<number, string> {
  const t = text.trim();
  if (/^[0-9]/.test(t)) {
    const v = parseInteger(t, 0xffff_ffffn);
    return v.ok ? ok(Number(v.value)) : v;
  }
  const name = t.toUpperCase().replace(/^KVM_HC_/, '');
  const n = (HC as Readonly<Record<string, number>>)[name];
  if (n !== undefined) return ok(n);
  return err(`must be a number or a hypercall name (${Object.keys(HC).join(', ')}), got ${quote(text)}`);
}

/** A name for a JIT image (letters, digits, `_`, `.`, `-`). */
export function parseImageName(text: string): Result<string, string> {
  const t = text.trim();
  if (/^[A-Za-z0-9_.-]{1,64}$/.test(t)) return ok(t);
  return err(`must be 1 to 64 letters, digits, _, . or -, got ${quote(text)}`);
}
