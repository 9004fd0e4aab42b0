/**
 * The `vmm` section of a VM state image: what the VMM itself holds for the VM (whether it
 * pinned the platform state, the verified kexec and crash kernels it staged, its CPU model
 * and the CPUs online), field by field (shared/state-schema.ts).
 */
import type { SectionFormat } from '../../../shared/state-section.ts';
import { bool, bytes, count, list, obj, oneOf, str, strMatching, tuple } from '../../../shared/state-schema.ts';
import { CPU_MODEL_SCHEMA, type CpuModel } from '../../../shared/x86/cpu-model.ts';
import type { KexecSlot, VerifiedKexecImage } from '../../exits/exit.ts';

/** What the `vmm` section holds. */
export interface VmmSection {
  readonly platformPinned: boolean;
  readonly staged: ReadonlyArray<readonly [KexecSlot, VerifiedKexecImage]>;
  /** The VM's CPU model and the CPUs online when it was saved: VM configuration, restored with it. */
  readonly cpu: { readonly model: CpuModel; readonly online: number };
}

/** Version of the `vmm` section's schema. */
export const VMM_SECTION_VERSION = 1;

const verifiedKexecImage = obj({ image: bytes, manifest: str, sha256: strMatching(/^[0-9a-f]{64}$/, 'a SHA-256 (64 lowercase hex digits)'), request: count });

/** The `vmm` section's format. */
export const VMM_SECTION: SectionFormat<VmmSection> = {
  name: 'vmm',
  version: VMM_SECTION_VERSION,
  schema: obj({
    platformPinned: bool,
    staged: list(tuple(oneOf('kexec', 'crash'), verifiedKexecImage), 2),
    cpu: obj({ model: CPU_MODEL_SCHEMA, online: count }),
  }),
};
