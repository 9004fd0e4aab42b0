/**
 * loadKernelImage: missing files are named with a hint, the decompressed-vmlinux cache is
 * written, used, and ignored when damaged or unwritable.
 */

import test from 'ava';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultFixtureDir, fixturePaths, fixturesAvailable } from '../../shared/kernel-image/fixture-paths.ts';
import { loadKernelImage } from '../../shared/kernel-image/load-kernel.ts';
import { readCachedVmlinux, vmlinuzCacheKey, writeCachedVmlinux } from '../../shared/kernel-image/vmlinux-cache.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

test('a missing vmlinuz is named, with where the fixtures live', async (t) => {
  const r = await loadKernelImage({ vmlinuzPath: '/nonexistent/vmlinuz', systemMapPath: '/nonexistent/System.map', cacheDir: false });
  t.false(r.ok);
  if (r.ok) return;
  t.is(r.error.kind, 'missing-file');
  t.is(r.error.file, '/nonexistent/vmlinuz');
  t.regex(r.error.message, /vmlinuz not found at \/nonexistent\/vmlinuz/);
  t.regex(r.error.message, /\.\.\/shared\/fixtures/);
});

test('a file that is not a bzImage is named in the error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-load-'));
  try {
    writeFileSync(join(dir, 'vmlinuz'), new Uint8Array(4096));
    writeFileSync(join(dir, 'System.map'), 'ffffffff81000000 T _stext\n');
    const r = await loadKernelImage({ vmlinuzPath: join(dir, 'vmlinuz'), systemMapPath: join(dir, 'System.map'), cacheDir: false });
    t.false(r.ok);
    if (!r.ok) {
      t.is(r.error.kind, 'bzimage');
      t.true(r.error.message.startsWith(`${join(dir, 'vmlinuz')}: bzImage: bad magic`), r.error.message);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fixture paths: HEKI_FIXTURES overrides the default beside the repo', (t) => {
  const saved = process.env['HEKI_FIXTURES'];
  try {
    process.env['HEKI_FIXTURES'] = '/somewhere/else';
    t.is(defaultFixtureDir(), '/somewhere/else');
    t.false(fixturesAvailable());
    delete process.env['HEKI_FIXTURES'];
    t.regex(defaultFixtureDir(), /\/shared\/fixtures\/linux-6\.1\.0-56-amd64$/);
  } finally {
    if (saved === undefined) delete process.env['HEKI_FIXTURES'];
    else process.env['HEKI_FIXTURES'] = saved;
  }
  const p = fixturePaths('/f');
  t.deepEqual(p, {
    dir: '/f',
    vmlinuz: '/f/vmlinuz',
    systemMap: '/f/System.map',
    config: '/f/config',
    signingKeyDer: '/f/signing_key.x509.der',
    modulesDir: '/f/modules',
  });
});

test('the cache rejects entries whose bytes do not match their record', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-cache-'));
  try {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    t.true(await writeCachedVmlinux(dir, 'k', bytes));
    t.deepEqual(await readCachedVmlinux(dir, 'k'), bytes);
    const damaged = readFileSync(join(dir, 'vmlinux-k'));
    damaged[5] = damaged[5]! ^ 1;
    writeFileSync(join(dir, 'vmlinux-k'), damaged);
    t.is(await readCachedVmlinux(dir, 'k'), undefined, 'same length, wrong sha256');
    writeFileSync(join(dir, 'vmlinux-k'), bytes.subarray(0, 999));
    t.is(await readCachedVmlinux(dir, 'k'), undefined, 'wrong length');
    t.is(await readCachedVmlinux(dir, 'missing'), undefined);
    t.false(await writeCachedVmlinux('/dev/null/not-a-dir', 'k', bytes), 'unwritable directory');
    t.deepEqual(readdirSync(dir).sort(), ['vmlinux-k', 'vmlinux-k.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

fixtureTest('loading the fixture fills the cache, and a damaged or unwritable cache falls back to decompressing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-kcache-'));
  try {
    const paths = { vmlinuzPath: fixtures.vmlinuz, systemMapPath: fixtures.systemMap };
    const key = vmlinuzCacheKey(new Uint8Array(readFileSync(fixtures.vmlinuz)));
    const first = await loadKernelImage({ ...paths, cacheDir: dir });
    if (!first.ok) return t.fail(first.error.message);
    t.deepEqual(readdirSync(dir).sort(), [`vmlinux-${key}`, `vmlinux-${key}.json`]);
    t.is(readFileSync(join(dir, `vmlinux-${key}`)).length, 65906612);

    const cached = await loadKernelImage({ ...paths, cacheDir: dir });
    t.true(cached.ok && cached.value.mcountSites.length === 40521);

    // Damage the cached ELF header: the entry no longer matches its sha256 and is redone.
    const f = join(dir, `vmlinux-${key}`);
    const bytes = readFileSync(f);
    bytes[0] = 0;
    writeFileSync(f, bytes);
    const redone = await loadKernelImage({ ...paths, cacheDir: dir });
    t.true(redone.ok && redone.value.jumpEntries.length === 6299);
    t.is(readFileSync(f)[0], 0x7f, 'the cache entry was rewritten');

    const unwritable = await loadKernelImage({ ...paths, cacheDir: '/dev/null/cache' });
    t.true(unwritable.ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
