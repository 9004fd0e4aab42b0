/**
 * The kernel the VMM boots: a vmlinux ELF (its PT_LOAD segments go to their physical
 * addresses, kernel-loader.ts) and the signed manifest the verifier checks it against, whose
 * sections tell the core where the kernel's text and rodata are (the kernel regions). The VMM
 * boots it at start and on every reboot; a kexec boots a staged one instead.
 *
 * TRUST: the VMM reads only the layout out of a manifest (section names and addresses); the
 * manifest's signature is the verifier's to check, and the VMM boots a kexec kernel only
 * after the verifier allowed its image and manifest.
 */
import type { Elf64 } from '../../../shared/elf/elf64.ts';
import { checkVmlinuxElf, extractVmlinux } from '../../../shared/kernel-image/bzimage.ts';
import { defaultCacheDir, readCachedVmlinux, vmlinuzCacheKey, writeCachedVmlinux } from '../../../shared/kernel-image/vmlinux-cache.ts';
import { type Result, err, ok } from '../../../shared/result.ts';
import type { KernelRegion } from '../../core/auth/authenticator.ts';

/** A kernel to boot. */
export interface BootKernel {
  /** The vmlinux whose segments the VMM loads. */
  readonly elf: Elf64;
  /** The signed manifest file's text. */
  readonly manifest: string;
  /** Where the manifest says the kernel's sections are. */
  readonly regions: readonly KernelRegion[];
  /** The manifest's kernel name, for logs and the audit trail. */
  readonly name: string;
}

const HEX = /^[0-9a-f]{1,16}$/;

/** The kernel regions and name a manifest file names; says what is malformed. */
export function manifestLayout(manifestText: string): Result<{ regions: KernelRegion[]; name: string; vmlinuzSha256: string }, string> {
  try {
    const file = JSON.parse(manifestText) as { body?: unknown };
    if (typeof file.body !== 'string') return err('the manifest has no body');
    const body = JSON.parse(file.body) as { kernel?: unknown; vmlinuzSha256?: unknown; sections?: unknown };
    if (!Array.isArray(body.sections)) return err('the manifest body has no sections');
    const regions: KernelRegion[] = [];
    for (const [i, s] of (body.sections as unknown[]).entries()) {
      const x = s as Record<string, unknown> | null;
      if (
        !x ||
        typeof x.name !== 'string' ||
        typeof x.vaddr !== 'string' ||
        typeof x.paddr !== 'string' ||
        !HEX.test(x.vaddr) ||
        !HEX.test(x.paddr) ||
        typeof x.size !== 'number' ||
        !Number.isSafeInteger(x.size) ||
        x.size <= 0
      ) {
        return err(`manifest section ${i} is malformed`);
      }
      regions.push({ name: x.name, vaddr: BigInt(`0x${x.vaddr}`), paddr: BigInt(`0x${x.paddr}`), size: x.size });
    }
    return ok({
      regions,
      name: typeof body.kernel === 'string' ? body.kernel : 'unknown',
      vmlinuzSha256: typeof body.vmlinuzSha256 === 'string' ? body.vmlinuzSha256 : '',
    });
  } catch (e) {
    return err(`the manifest is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * The vmlinux inside a bzImage (the cached decompression when there is one, as the loader
 * of the first boot uses), with the manifest's layout: a kernel the VMM can boot.
 */
export async function bootKernelFromBzImage(vmlinuz: Uint8Array, manifest: string): Promise<Result<BootKernel, string>> {
  const layout = manifestLayout(manifest);
  if (!layout.ok) return layout;
  const dir = defaultCacheDir();
  const key = vmlinuzCacheKey(vmlinuz);
  const cached = await readCachedVmlinux(dir, key).catch(() => undefined);
  if (cached) {
    const elf = checkVmlinuxElf(cached);
    if (elf.ok) return ok({ elf: elf.value, manifest, regions: layout.value.regions, name: layout.value.name });
  }
  const x = extractVmlinux(vmlinuz);
  if (!x.ok) return err(`cannot decompress the kernel: ${x.error.message}`);
  await writeCachedVmlinux(dir, key, x.value.vmlinux).catch(() => false);
  return ok({ elf: x.value.elf, manifest, regions: layout.value.regions, name: layout.value.name });
}
