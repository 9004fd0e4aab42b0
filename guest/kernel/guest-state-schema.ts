/**
 * The `guest` section of a VM state image: the guest kernel's bookkeeping
 * ({@link GuestKernelState}), field by field (shared/state-schema.ts). Guest data: the host
 * carries it, and only restoreGuestKernel, on the restored vCPU, reads it back.
 */
import { type Result, err, ok } from '../../shared/result.ts';
import type { SectionFormat } from '../../shared/state-section.ts';
import { big, bool, bytes, count, list, nullable, obj, opt, orUndefined, str, tuple, u32, validated } from '../../shared/state-schema.ts';
import { validateCpuModel } from '../../shared/x86/cpu-model.ts';
import type { CpuView } from '../../shared/x86/cpuid.ts';
import { GUEST_KERNEL_STATE_VERSION, type GuestKernelState } from './guest-state.ts';

const range = obj({ start: big, end: big });
const area = obj({ va: big, pages: count });

/** `boot_cpu_data`: a CPU model's fields but its name, checked as one. */
function validateCpuView(j: unknown): Result<CpuView, string> {
  if (typeof j !== 'object' || j === null || Array.isArray(j) || 'name' in j)
    return err("boot_cpu_data must be an object of a CPU model's fields without a name");
  const m = validateCpuModel({ ...j, name: 'boot_cpu_data' });
  if (!m.ok) return m;
  const { name: _, ...view } = m.value;
  return ok(view);
}

const guestKernelState = obj({
  version: count,
  stext: big,
  pageTables: obj({ root: big, nextTableFrame: big }),
  frames: obj({ start: big, end: big, used: bytes, hint: count }),
  scratch: obj({ pa: big, size: count }),
  heki: obj({ abi: orUndefined(u32), bootEnded: bool, counters: list(tuple(u32, obj({ read: count, write: count, exec: count }))) }),
  areas: obj({ modules: list(range), vmalloc: list(range) }),
  modules: obj({
    percpuNext: big,
    loaded: list(
      obj({
        file: bytes,
        core: area,
        init: orUndefined(area),
        initBase: big,
        percpuBase: big,
        placed: opt(list(obj({ shndx: count, addr: big, size: count }))),
      }),
    ),
  }),
  ftraceEnabled: list(big),
  kprobes: list(tuple(big, count)),
  ftraceKprobes: opt(list(big)),
  staticCalls: list(tuple(big, nullable(big))),
  bpf: list(obj({ name: str, va: big, pages: count, length: count })),
  bootCpuData: validated('the CPU as the kernel detected it', validateCpuView),
  uniprocPatched: bool,
});

/** The `guest` section's format. */
export const GUEST_SECTION: SectionFormat<GuestKernelState> = { name: 'guest', version: GUEST_KERNEL_STATE_VERSION, schema: guestKernelState };
