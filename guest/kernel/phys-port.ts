/**
 * How guest kernel code reaches physical memory through its vCPU: with paging off (early
 * boot) a virtual address is physical; with paging on it goes through the direct map.
 */
import { gva } from '../../shared/addr.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { PhysPort } from '../mm/page-table-writer.ts';
import { physToVirt } from './layout.ts';

/** A PhysPort over the vCPU, at `physToVirt` (direct map) or identity (paging off). */
export function cpuPhysPort(
  cpu: GuestCpu,
  direct: boolean,
): PhysPort & { write(pa: bigint, bytes: Uint8Array): boolean; read(pa: bigint, len: number): Uint8Array | undefined } {
  const at = (pa: bigint): bigint => (direct ? physToVirt(pa) : pa);
  return {
    readU64(pa) {
      const r = cpu.read(gva(at(pa)), 8);
      return r.ok ? new DataView(r.value.buffer, r.value.byteOffset).getBigUint64(0, true) : undefined;
    },
    writeU64(pa, value) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, value, true);
      return cpu.write(gva(at(pa)), b).ok;
    },
    write(pa, bytes) {
      return cpu.write(gva(at(pa)), bytes).ok;
    },
    writePage(pa, bytes) {
      return cpu.write(gva(at(pa)), bytes).ok;
    },
    read(pa, len) {
      const r = cpu.read(gva(at(pa)), len);
      return r.ok ? r.value : undefined;
    },
  };
}
