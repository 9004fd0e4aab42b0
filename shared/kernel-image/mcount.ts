/**
 * ftrace call sites of vmlinux: the u64 addresses in `[__start_mcount_loc,
 * __stop_mcount_loc)`, which `scripts/recordmcount` (or objtool) collected at build time
 * and `ftrace_init()` walks at boot. In the file image each site still holds the compiler's
 * `e8 rel32` call to `__fentry__`; ftrace turns it into a 5-byte NOP at boot.
 */

import { hex } from '../addr.ts';
import { err, ok, type Result } from '../result.ts';
import { kernelImageError, type KernelImageError } from './kernel-image-errors.ts';
import type { KernelLayout } from './kernel-layout.ts';
import type { SystemMap } from './system-map.ts';

/** What the 5 bytes at an ftrace site hold in the file image. */
export type McountInsn = 'call' | 'nop5' | 'other';

/** One ftrace site. */
export interface McountSite {
  /** Address of the 5-byte instruction. */
  readonly address: bigint;
  /** The section it is in (`.text` or `.init.text` in the fixture). */
  readonly section: string;
  /** The instruction currently there. */
  readonly insn: McountInsn;
  /** For `call`: the call target (`site + 5 + rel32`). */
  readonly target: bigint | undefined;
}

const NOP5 = [0x0f, 0x1f, 0x44, 0x00, 0x00] as const;

/** Decodes a 5-byte ftrace site at `address`. */
export function decodeMcountSite(address: bigint, bytes: Uint8Array): { insn: McountInsn; target: bigint | undefined } {
  if (bytes.length >= 5 && bytes[0] === 0xe8) {
    const rel = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getInt32(0, true);
    return { insn: 'call', target: (address + 5n + BigInt(rel)) & 0xffffffffffffffffn };
  }
  if (bytes.length >= 5 && NOP5.every((b, i) => bytes[i] === b)) return { insn: 'nop5', target: undefined };
  return { insn: 'other', target: undefined };
}

/**
 * Reads the mcount table. The table must be file-backed, a whole number of u64s, sorted,
 * and every site must lie in an allocated section with 5 readable bytes.
 */
export function readMcountSites(layout: KernelLayout, map: SystemMap): Result<McountSite[], KernelImageError> {
  const start = map.address('__start_mcount_loc');
  const stop = map.address('__stop_mcount_loc');
  if (start === undefined || stop === undefined) {
    return err(kernelImageError('missing-symbol', 'System.map has no __start_mcount_loc / __stop_mcount_loc'));
  }
  if (stop < start || (stop - start) % 8n !== 0n) {
    return err(kernelImageError('mcount', `mcount table [${hex(start)}, ${hex(stop)}) is not a whole number of 8-byte entries`));
  }
  const table = layout.readVirt(start, Number(stop - start));
  if (table === undefined) return err(kernelImageError('mcount', `mcount table at ${hex(start)} is not in the file image`));
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const count = table.length / 8;
  const sites: McountSite[] = [];
  let prev = -1n;
  for (let i = 0; i < count; i++) {
    const address = dv.getBigUint64(i * 8, true);
    if (address <= prev) return err(kernelImageError('mcount', `mcount entry ${i} (${hex(address)}) is not above the previous one: the table must be sorted`));
    prev = address;
    const section = layout.sectionAt(address);
    const bytes = layout.readVirt(address, 5);
    if (section === undefined || bytes === undefined) {
      return err(kernelImageError('mcount', `mcount entry ${i} (${hex(address)}) is not inside a file-backed section`));
    }
    const d = decodeMcountSite(address, bytes);
    sites.push({ address, section: section.name, insn: d.insn, target: d.target });
  }
  return ok(sites);
}
