/**
 * A synthetic machine with an in-process stub in place of the verifier VM, so that each step
 * of an authenticated change can be observed, and a module placed by the guest: one text page
 * (MOD_VA -> MOD_TEXT), one data page, its image and name at BLOB_VA, its descriptor at DESC.
 */
import { gpa } from '../../shared/addr.ts';
import type { VmmConfig } from '../../hypervisor/index.ts';
import { LAYOUT, PTE, bootSynthetic, type SyntheticMachine } from './synthetic-machine.ts';
import { MEM_ATTR } from '../../shared/abi.ts';
import { encodeModuleDesc } from '../../shared/heki-descriptors.ts';
import { PROTOCOL_VERSION, type Verdict } from '../../shared/protocol.ts';
import type { OutgoingRequest } from '../../hypervisor/verifier-link/verifier-link.ts';
import { AuditLog } from '../../hypervisor/audit/audit-log.ts';

/** The stub verifier's decision for one request. */
export type Decide = (r: OutgoingRequest) => Omit<Verdict, 'v' | 'id' | 'plugins'> | Promise<Omit<Verdict, 'v' | 'id' | 'plugins'>>;

/** The module's text page: guest-virtual, guest-physical. */
export const MOD_VA = 0xffff_ffff_c000_0000n;
export const MOD_TEXT = 0x80_0000n;
/** The module's data page (guest-physical; MOD_VA + 0x1000 in the guest). */
export const MOD_DATA = 0x80_1000n;
/** Guest-physical address of the module descriptor (and of other descriptors tests write). */
export const DESC = 0x90_0000n;
/** A guest data page holding the module image (12 bytes) and its name (at +13, 4 bytes). */
export const BLOB_VA = 0xffff_c900_1000_0000n;
export const BLOB = 0x91_0000n;

/**
 * Boots the machine with `decide` as the verifier (kernel region: one page of .text), and
 * places the module. `seen` lists the requests the stub got, `audit` is the core's log.
 */
export function withVerifier(decide: Decide, config: Partial<VmmConfig> = {}): { m: SyntheticMachine; audit: AuditLog; seen: OutgoingRequest[] } {
  const m = bootSynthetic(config);
  const audit = AuditLog.inMemory();
  const seen: OutgoingRequest[] = [];
  let id = 0;
  m.vmm.core.attachVerifier({
    vm: 'vm0',
    audit,
    kernelRegions: [{ name: '.text', vaddr: m.kva(LAYOUT.text), paddr: LAYOUT.text, size: 4096 }],
    port: {
      async verify(r) {
        seen.push(r);
        const d = await decide(r);
        return { v: PROTOCOL_VERSION, id: ++id, plugins: ['stub'], ...d };
      },
    },
  });
  // A module placed by the guest: one text page, one data page, and its image and name.
  m.pt.map(MOD_VA, MOD_TEXT, PTE.RW | PTE.NX);
  m.pt.map(MOD_VA + 0x1000n, MOD_DATA, PTE.RW | PTE.NX);
  m.pt.map(BLOB_VA, BLOB, PTE.RW | PTE.NX);
  m.vmm.core.memory.write(gpa(MOD_TEXT), Uint8Array.of(0x55, 0x48, 0x89, 0xe5, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3));
  m.vmm.core.memory.write(gpa(BLOB), new TextEncoder().encode('SIGNED-IMAGE\0mod0'));
  m.vmm.core.memory.write(
    gpa(DESC),
    encodeModuleDesc({
      imageGva: BLOB_VA,
      imageLen: 12,
      nameGva: BLOB_VA + 13n,
      nameLen: 4,
      sections: [
        { shndx: 1, gva: MOD_VA, size: 10 },
        { shndx: 2, gva: MOD_VA + 0x1000n, size: 16 },
      ],
    }),
  );
  return { m, audit, seen };
}

/** What the stub grants the module's two sections: text R|X|IMMUTABLE, data R|W. */
export const grants = [
  { shndx: 1, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE },
  { shndx: 2, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE },
];
