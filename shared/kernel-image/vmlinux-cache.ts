/**
 * A content-addressed disk cache of what the host derives from a kernel image and can
 * rebuild at will: the decompressed vmlinux (so runs decompress a vmlinuz once) and the
 * manifest body built from it (machine/manifest-cache.ts). Entries live in
 * `$HEKI_CACHE_DIR`, else `node_modules/.cache/heki-sim`, as `<kind>-<sha256 key>` with a
 * `.json` record beside each holding the length and sha256 of the cached bytes.
 *
 * TRUST: the cache is a convenience, not a trust anchor. An entry is used only when its
 * length and sha256 match its record (a torn or damaged entry is rebuilt), and the caller
 * still parses and checks what it reads: a cached vmlinux is cross-checked against its
 * System.map like a decompressed one, and a cached manifest body is signed by the vendor
 * key and checked by the verifier like a built one. Any failure (missing, stale, unwritable
 * directory) falls back to rebuilding, silently.
 */

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './fixture-paths.ts';

/** The cache directory: `$HEKI_CACHE_DIR` when set and non-empty, else `node_modules/.cache/heki-sim`. */
export function defaultCacheDir(): string {
  const env = process.env.HEKI_CACHE_DIR;
  return env !== undefined && env !== '' ? env : join(repoRoot(), 'node_modules', '.cache', 'heki-sim');
}

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The cache key of a vmlinuz: its SHA-256. */
export function vmlinuzCacheKey(vmlinuz: Uint8Array): string {
  return sha256Hex(vmlinuz);
}

interface CacheRecord {
  length: number;
  sha256: string;
}

function isRecord(v: unknown): v is CacheRecord {
  return typeof v === 'object' && v !== null && typeof (v as CacheRecord).length === 'number' && typeof (v as CacheRecord).sha256 === 'string';
}

/** The bytes cached as `<name>`, or undefined when absent or not matching their record. */
export async function readCacheEntry(dir: string, name: string): Promise<Uint8Array | undefined> {
  try {
    const base = join(dir, name);
    const record: unknown = JSON.parse(await readFile(`${base}.json`, 'utf8'));
    if (!isRecord(record)) return undefined;
    const bytes = new Uint8Array(await readFile(base));
    if (bytes.length !== record.length) return undefined;
    if (sha256Hex(bytes) !== record.sha256) return undefined;
    return bytes;
  } catch {
    return undefined;
  }
}

/**
 * Stores `bytes` as `<name>`; returns false (and leaves no partial entry) on any failure.
 * The bytes are renamed into place before their record is written, so a reader never
 * trusts a half-written entry: until the record matches, the entry is a miss.
 */
export async function writeCacheEntry(dir: string, name: string, bytes: Uint8Array): Promise<boolean> {
  const base = join(dir, name);
  const tmp = `${base}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, bytes);
    await rename(tmp, base);
    const record: CacheRecord = { length: bytes.length, sha256: sha256Hex(bytes) };
    await writeFile(`${base}.json`, JSON.stringify(record));
    return true;
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
    return false;
  }
}

/** The cached vmlinux for `key`, or undefined when absent or not matching its record. */
export function readCachedVmlinux(dir: string, key: string): Promise<Uint8Array | undefined> {
  return readCacheEntry(dir, `vmlinux-${key}`);
}

/** Stores `vmlinux` under `key`; returns false (and leaves no partial entry) on any failure. */
export function writeCachedVmlinux(dir: string, key: string, vmlinux: Uint8Array): Promise<boolean> {
  return writeCacheEntry(dir, `vmlinux-${key}`, vmlinux);
}
