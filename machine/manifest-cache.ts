/**
 * The vendor's manifest body, built once per kernel image: building it from a loaded image
 * (tools/manifest-builder.ts: section digests, patch-site tables, the touch-up spans
 * and page digests) costs about as much as the rest of a machine's creation, and it depends
 * only on the image and on the code that builds it. So the body is kept in the
 * content-addressed host cache (shared/kernel-image/vmlinux-cache.ts) under the SHA-256 of
 * the vmlinuz, of its System.map, of the body's format version and of the simulator's own
 * source files: a changed builder (or any other source change) never reads a stale body.
 *
 * TRUST: the body is what the vendor signs; here the ephemeral vendor key signs it for each
 * machine, as it would sign a freshly built one, and the verifier checks it the same way.
 * The cache lives with the host's other files (the host is trusted to hold its vendor's
 * manifests); a damaged entry fails its recorded SHA-256 and is rebuilt.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { repoRoot } from '../shared/kernel-image/fixture-paths.ts';
import { defaultCacheDir, readCacheEntry, writeCacheEntry } from '../shared/kernel-image/vmlinux-cache.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import { MANIFEST_VERSION, type ManifestBody } from '../verifier-vm/manifest.ts';
import { buildManifestBody, type ManifestInfo } from '../tools/manifest-builder.ts';

/** The folders whose sources can change what a manifest body holds. */
const SOURCE_FOLDERS = ['shared', 'verifier-vm', 'hypervisor', 'guest', 'machine', 'tools'];

let sourceDigestMemo: string | undefined;

/** SHA-256 over the simulator's source files (path and bytes, in sorted order), once per process. */
export function sourceDigest(): string {
  if (sourceDigestMemo !== undefined) return sourceDigestMemo;
  const root = repoRoot();
  const files: string[] = [];
  const walk = (rel: string): void => {
    let entries;
    try {
      entries = readdirSync(join(root, rel), { withFileTypes: true });
    } catch {
      return; // a folder this checkout does not have
    }
    for (const e of entries) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && (e.name.endsWith('.ts') || e.name.endsWith('.mjs'))) files.push(p);
    }
  };
  for (const f of SOURCE_FOLDERS) walk(f);
  files.sort();
  const h = createHash('sha256');
  for (const f of files)
    h.update(`${f}\0`)
      .update(readFileSync(join(root, f)))
      .update('\0');
  return (sourceDigestMemo = h.digest('hex'));
}

/** Where the body cache looks; `false` builds without it. */
export interface ManifestCacheOptions {
  readonly cacheDir?: string | false;
}

/**
 * The manifest body of `image` (as {@link buildManifestBody} builds it), read from the cache
 * when an entry for this image, System.map, format and source exists and matches its
 * record, else built and stored. An image without its files' digests (built in memory, not
 * loaded from files) is always built.
 */
export async function manifestBodyFor(image: KernelImage, info: ManifestInfo, opts: ManifestCacheOptions = {}): Promise<ManifestBody> {
  const dir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (dir === false || image.source === undefined) return buildManifestBody(image, info);
  const key = createHash('sha256')
    .update(
      JSON.stringify({ format: MANIFEST_VERSION, vmlinuz: image.source.vmlinuzSha256, systemMap: image.source.systemMapSha256, info, source: sourceDigest() }),
    )
    .digest('hex');
  const name = `manifest-body-${key}`;
  const cached = await readCacheEntry(dir, name);
  if (cached !== undefined) {
    try {
      return JSON.parse(new TextDecoder().decode(cached)) as ManifestBody;
    } catch {
      // a matching record over unparsable bytes cannot come from writeCacheEntry: rebuild
    }
  }
  const body = buildManifestBody(image, info);
  await writeCacheEntry(dir, name, new TextEncoder().encode(JSON.stringify(body)));
  return body;
}
