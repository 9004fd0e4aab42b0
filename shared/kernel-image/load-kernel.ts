/**
 * Loading a kernel image from disk: vmlinuz (bzImage) plus System.map, decompressed (or
 * taken from the vmlinux cache), parsed and cross-checked into a {@link KernelImage}.
 */

import { createHash } from 'node:crypto';
import type { Elf64 } from '../elf/elf64.ts';
import { err, type Result } from '../result.ts';
import { hostPathMissing, readHostFile } from '../host-file.ts';
import { checkVmlinuxElf, extractVmlinux } from './bzimage.ts';
import { kernelImageError, type KernelImageError } from './kernel-image-errors.ts';
import { parseSystemMap } from './system-map.ts';
import { defaultCacheDir, readCachedVmlinux, vmlinuzCacheKey, writeCachedVmlinux } from './vmlinux-cache.ts';
import { buildKernelImage, type KernelImage } from './vmlinux.ts';

/** Where to load from. */
export interface LoadKernelOptions {
  /** The bzImage. */
  readonly vmlinuzPath: string;
  /** Its System.map. */
  readonly systemMapPath: string;
  /** Cache directory for the decompressed vmlinux; `false` disables the cache. */
  readonly cacheDir?: string | false;
}

async function readInput(path: string, what: string): Promise<Result<Uint8Array, KernelImageError>> {
  if (hostPathMissing(path)) {
    return err(
      kernelImageError(
        'missing-file',
        `${what} not found at ${path} (the kernel fixtures live in ../shared/fixtures; set HEKI_FIXTURES to another directory)`,
        path,
      ),
    );
  }
  const bytes = readHostFile(path);
  return bytes.ok ? bytes : err(kernelImageError('read-failed', `${what}: ${bytes.error}`, path));
}

/** Reads, decompresses and parses a kernel; every failure names the file and the problem. */
export async function loadKernelImage(opts: LoadKernelOptions): Promise<Result<KernelImage, KernelImageError>> {
  const vmlinuz = await readInput(opts.vmlinuzPath, 'vmlinuz');
  if (!vmlinuz.ok) return vmlinuz;
  const mapBytes = await readInput(opts.systemMapPath, 'System.map');
  if (!mapBytes.ok) return mapBytes;

  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  const key = vmlinuzCacheKey(vmlinuz.value);
  let vmlinux = cacheDir === false ? undefined : await readCachedVmlinux(cacheDir, key);
  let elf: Elf64 | undefined;
  if (vmlinux !== undefined) {
    const checked = checkVmlinuxElf(vmlinux);
    if (checked.ok) elf = checked.value;
    else vmlinux = undefined; // a bad cache entry is ignored, not reported
  }
  if (vmlinux === undefined || elf === undefined) {
    const extracted = extractVmlinux(vmlinuz.value);
    if (!extracted.ok) return err(kernelImageError('bzimage', `${opts.vmlinuzPath}: ${extracted.error.message}`, opts.vmlinuzPath));
    vmlinux = extracted.value.vmlinux;
    elf = extracted.value.elf;
    if (cacheDir !== false) await writeCachedVmlinux(cacheDir, key, vmlinux);
  }

  const map = parseSystemMap(new TextDecoder().decode(mapBytes.value));
  if (!map.ok) return err(kernelImageError('system-map', `${opts.systemMapPath}: ${map.error.message}`, opts.systemMapPath));

  const image = buildKernelImage(vmlinux, elf, map.value, { vmlinuzSha256: key, systemMapSha256: createHash('sha256').update(mapBytes.value).digest('hex') });
  if (!image.ok) return err(kernelImageError(image.error.kind, `${opts.vmlinuzPath} with ${opts.systemMapPath}: ${image.error.message}`, image.error.file));
  return image;
}
