/**
 * A disk cache of decompressed vmlinux images, so test runs decompress the fixture kernel
 * once: `node_modules/.cache/heki-sim/vmlinux-<first 16 hex of sha256(vmlinuz)>`, with a
 * `.json` beside it holding the length and sha256 of the cached bytes.
 *
 * TRUST: the cache is a convenience, not a trust anchor. An entry is used only when its
 * length and sha256 match the record, and the caller still parses and checks it; any
 * failure (missing, stale, unwritable directory) falls back to decompressing, silently.
 */

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './fixture-paths.ts';

/** The default cache directory. */
export function defaultCacheDir(): string {
  return join(repoRoot(), 'node_modules', '.cache', 'heki-sim');
}

/** The cache key of a vmlinuz: the first 16 hex digits of its sha256. */
export function vmlinuzCacheKey(vmlinuz: Uint8Array): string {
  return createHash('sha256').update(vmlinuz).digest('hex').slice(0, 16);
}

interface CacheRecord {
  length: number;
  sha256: string;
}

function isRecord(v: unknown): v is CacheRecord {
  return typeof v === 'object' && v !== null && typeof (v as CacheRecord).length === 'number' && typeof (v as CacheRecord).sha256 === 'string';
}

/** The cached vmlinux for `key`, or undefined when absent or not matching its record. */
export async function readCachedVmlinux(dir: string, key: string): Promise<Uint8Array | undefined> {
  try {
    const base = join(dir, `vmlinux-${key}`);
    const record: unknown = JSON.parse(await readFile(`${base}.json`, 'utf8'));
    if (!isRecord(record)) return undefined;
    const bytes = new Uint8Array(await readFile(base));
    if (bytes.length !== record.length) return undefined;
    if (createHash('sha256').update(bytes).digest('hex') !== record.sha256) return undefined;
    return bytes;
  } catch {
    return undefined;
  }
}

/** Stores `vmlinux` under `key`; returns false (and leaves no partial entry) on any failure. */
export async function writeCachedVmlinux(dir: string, key: string, vmlinux: Uint8Array): Promise<boolean> {
  const base = join(dir, `vmlinux-${key}`);
  const tmp = `${base}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, vmlinux);
    await rename(tmp, base);
    const record: CacheRecord = { length: vmlinux.length, sha256: createHash('sha256').update(vmlinux).digest('hex') };
    await writeFile(`${base}.json`, JSON.stringify(record));
    return true;
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
    return false;
  }
}
