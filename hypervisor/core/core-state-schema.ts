/**
 * The `core` section of a VM state image: {@link CoreState} field by field
 * (shared/state-schema.ts). Read back, it is only the shape: VmCore.loadState then checks
 * that it fits the VM (RAM size, vCPU count, pinnable bits, a valid MSR filter).
 */
import type { SectionFormat } from '../../shared/state-section.ts';
import { big, bool, bytes, count, int, list, obj, oneOf, opt, orUndefined, str, tuple, u32 } from '../../shared/state-schema.ts';
import { CORE_STATE_VERSION, type CoreState } from './core-state.ts';

const descriptorTable = obj({ base: big, limit: int(0, 0xffff) });

/** A vCPU's registers (Vcpu.getState). */
const vcpu = obj({
  cr0: big,
  cr3: big,
  cr4: big,
  efer: big,
  cpl: oneOf(0, 3),
  idtr: descriptorTable,
  gdtr: descriptorTable,
  msrs: list(tuple(u32, big)),
});

/** A module's or code image's record: frames with their EPT bits before, text pages. */
const grantRecord = obj({ name: str, frames: list(tuple(u32, u32)), textPages: list(tuple(big, u32)) });
/** A module's record also keeps each section's frames (section index, frames), once it has them. */
const moduleRecord = obj({ name: str, frames: list(tuple(u32, u32)), textPages: list(tuple(big, u32)), sections: opt(list(tuple(u32, list(u32)))) });

const coreState = obj({
  version: count,
  memoryBytes: big,
  pins: obj({ cr0: big, cr4: big }),
  msrFilter: obj({ defaultAction: oneOf('allow', 'deny'), ranges: list(obj({ flags: u32, base: u32, nmsrs: u32, bitmap: bytes })) }),
  crFilter: obj({ cr0: big, cr4: big, cr3: bool, descriptorTables: bool }),
  hekiExitMasks: obj({ configure: u32, denial: u32 }),
  ept: list(tuple(u32, u32, u32)),
  protectedMemory: bool,
  sharedFrames: list(u32),
  vcpus: list(vcpu, 4096),
  auth: orUndefined(
    obj({
      vm: str,
      kernelRegions: list(obj({ name: str, vaddr: big, paddr: big, size: count })),
      bootEnded: bool,
      modules: list(moduleRecord),
      codeImages: list(grantRecord),
      codePages: list(tuple(big, u32)),
    }),
  ),
});

/** The `core` section's format. */
export const CORE_SECTION: SectionFormat<CoreState> = { name: 'core', version: CORE_STATE_VERSION, schema: coreState };
