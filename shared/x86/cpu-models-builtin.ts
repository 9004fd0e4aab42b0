/**
 * The three CPU models users name (`qemu64-up`, `skylake-smp2`, `epyc-smp2`), embedded so a
 * machine boots them without the reference fixtures. Each is what the Debian 6.1.192 kernel
 * computed when it booted under QEMU (TCG, `-machine pc`) with that `-cpu` and `-smp`: the
 * identity and the 24 capability words of `boot_cpu_data` (the reference folder's
 * `boot_cpu_data.bin`), and `smp` and `cmdline` of its `reference.json`
 * (../shared/fixtures/linux-6.1.0-56-amd64/reference/). test/unit/cpu-models.test.ts checks
 * these constants against the fixture files when they are present.
 */
import type { CpuModel } from './cpu-model.ts';

/** The command line the reference boots used (reference.json `cmdline`). */
const REFERENCE_CMDLINE = 'nokaslr console=ttyS0 panic=0';

/** QEMU's `qemu64`, one vCPU: AMD family 0xf; SMP lock prefixes patched to UP, retpolines. */
const QEMU64_UP: CpuModel = {
  name: 'qemu64-up',
  vendorId: 'AuthenticAMD',
  vendor: 2,
  family: 15,
  model: 107,
  stepping: 1,
  modelId: 'QEMU Virtual CPU version 2.5+',
  capabilities: [
    0x078bfbfd, 0x2193fbfd, 0x00000000, 0x06354010, 0x80002001, 0x00000000, 0x00000105, 0x00082000, 0x00008000, 0x00000000, 0x00000000, 0x00001020, 0x00000000,
    0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x0001ad40, 0x00000000,
  ],
  presentCpus: 1,
  possibleCpus: 1,
  physBits: 40,
  virtBits: 48,
  cmdline: REFERENCE_CMDLINE,
};

/** QEMU's `Skylake-Client`, two vCPUs: Intel; PTI, retpolines, ITS-aligned return thunks. */
const SKYLAKE_SMP2: CpuModel = {
  name: 'skylake-smp2',
  vendorId: 'GenuineIntel',
  vendor: 0,
  family: 6,
  model: 94,
  stepping: 3,
  modelId: 'Intel Core Processor (Skylake)',
  capabilities: [
    0x178bfbfd, 0x28100800, 0x00000000, 0x02758100, 0xfed83203, 0x00000000, 0x00000021, 0xa0082800, 0x00000000, 0x001803a9, 0x00000005, 0x08045020, 0x00000000,
    0x00000000, 0x00000004, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x4bafc000, 0x00000028,
  ],
  presentCpus: 2,
  possibleCpus: 2,
  physBits: 40,
  virtBits: 48,
  cmdline: REFERENCE_CMDLINE,
};

/** QEMU's `EPYC`, two vCPUs: AMD Zen; retbleed's untrained return thunk, SRSO. */
const EPYC_SMP2: CpuModel = {
  name: 'epyc-smp2',
  vendorId: 'AuthenticAMD',
  vendor: 2,
  family: 23,
  model: 1,
  stepping: 2,
  modelId: 'AMD EPYC Processor',
  capabilities: [
    0x178bfbfd, 0x2dd3fbfd, 0x00000000, 0x06354010, 0xfed8320b, 0x00000000, 0x00000177, 0x110a2000, 0x00008000, 0x009801a9, 0x00000005, 0x8100d020, 0x00000000,
    0x00000000, 0x00000004, 0x00000001, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x28038540, 0x00000003,
  ],
  presentCpus: 2,
  possibleCpus: 2,
  physBits: 40,
  virtBits: 48,
  cmdline: REFERENCE_CMDLINE,
};

/** The named models, by name. */
export const BUILTIN_CPU_MODELS: ReadonlyMap<string, CpuModel> = new Map([QEMU64_UP, SKYLAKE_SMP2, EPYC_SMP2].map((m) => [m.name, m]));

/**
 * The model a machine boots when none is named: `skylake-smp2`. Intel with two CPUs, it has
 * the most kinds of boot touch-ups of the three (retpolines, ITS-aligned return thunks, PTI,
 * SMP lock prefixes kept), so a default run checks the most of the verifier's prediction.
 */
export const DEFAULT_CPU_MODEL_NAME = 'skylake-smp2';

/** The default model ({@link DEFAULT_CPU_MODEL_NAME}). */
export const DEFAULT_CPU_MODEL: CpuModel = SKYLAKE_SMP2;
