/**
 * The manifest body cache (machine/manifest-cache.ts): a body is built once per kernel image
 * and read back equal, under a key of the image's, the System.map's and the source's
 * SHA-256; a damaged entry is rebuilt, never used; an image not loaded from files, or a
 * disabled cache, always builds.
 */
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKernelImage } from '../../shared/kernel-image/load-kernel.ts';
import { manifestBodyFor, sourceDigest } from '../../machine/manifest-cache.ts';
import { buildManifestBody } from '../../tools/manifest-builder.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);
const info = { kernel: 'linux-6.1.0-56-amd64', vmlinuzSha256: 'ab'.repeat(32) };

fixtureTest('the body is built once, stored, read back equal to a fresh build, and rebuilt when damaged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-mcache-'));
  try {
    const image = await loadKernelImage({ vmlinuzPath: fixtures.vmlinuz, systemMapPath: fixtures.systemMap, cacheDir: dir });
    if (!image.ok) return t.fail(image.error.message);
    t.truthy(image.value.source, 'a loaded image carries its files digests');
    const built = buildManifestBody(image.value, info);
    const first = await manifestBodyFor(image.value, info, { cacheDir: dir });
    t.deepEqual(first, built);
    const entries = readdirSync(dir).filter((f) => f.startsWith('manifest-body-'));
    t.is(entries.length, 2, 'one entry and its record');
    const entry = join(
      dir,
      entries.find((f) => !f.endsWith('.json'))!,
    );

    // A second read returns the stored body: make the stored bytes recognisable, with a
    // matching record, and see them come back.
    const marked = { ...built, kernel: 'from-the-cache' };
    const bytes = new TextEncoder().encode(JSON.stringify(marked));
    writeFileSync(entry, bytes);
    const { createHash } = await import('node:crypto');
    writeFileSync(`${entry}.json`, JSON.stringify({ length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }));
    t.is((await manifestBodyFor(image.value, info, { cacheDir: dir })).kernel, 'from-the-cache');

    // Damage the entry without its record: it no longer matches, is rebuilt and rewritten.
    const damaged = readFileSync(entry);
    damaged[10] = damaged[10]! ^ 1;
    writeFileSync(entry, damaged);
    t.deepEqual(await manifestBodyFor(image.value, info, { cacheDir: dir }), built);
    t.deepEqual(JSON.parse(readFileSync(entry, 'utf8')), JSON.parse(JSON.stringify(built)), 'the entry was rewritten');

    // Another kernel name is another key.
    await manifestBodyFor(image.value, { ...info, kernel: 'other' }, { cacheDir: dir });
    t.is(readdirSync(dir).filter((f) => f.startsWith('manifest-body-')).length, 4);

    // No cache, or an image without file digests: built every time, nothing written.
    const before = readdirSync(dir).length;
    t.deepEqual(await manifestBodyFor(image.value, info, { cacheDir: false }), built);
    const { source: _source, ...inMemory } = image.value;
    t.deepEqual(await manifestBodyFor(inMemory, { ...info, kernel: 'in-memory' }, { cacheDir: dir }), { ...built, kernel: 'in-memory' });
    t.is(readdirSync(dir).length, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the source digest is a SHA-256 and stable within a process', (t) => {
  t.regex(sourceDigest(), /^[0-9a-f]{64}$/);
  t.is(sourceDigest(), sourceDigest());
});
