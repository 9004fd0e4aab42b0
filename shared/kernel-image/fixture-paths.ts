/**
 * Where the real Debian 6.1 kernel fixtures live (see
 * `../shared/fixtures/linux-6.1.0-56-amd64/README.md`): vmlinuz, System.map, config, the
 * module signing certificate and a set of signed modules.
 */

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fixture set this code was checked against. */
export const FIXTURE_NAME = 'linux-6.1.0-56-amd64';

/** The files of one fixture directory. */
export interface FixturePaths {
  /** The directory itself. */
  readonly dir: string;
  /** The bzImage. */
  readonly vmlinuz: string;
  /** The symbol map of the vmlinux inside `vmlinuz`. */
  readonly systemMap: string;
  /** The kernel build config. */
  readonly config: string;
  /** The DER X.509 certificate of the module signing key. */
  readonly signingKeyDer: string;
  /** The directory of signed `.ko` files. */
  readonly modulesDir: string;
}

/** The repository root: two levels above this file (`shared/kernel-image/`). */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/**
 * The fixture directory: `$HEKI_FIXTURES` when set and non-empty, else
 * `<repo root>/../shared/fixtures/linux-6.1.0-56-amd64`.
 */
export function defaultFixtureDir(): string {
  const env = process.env['HEKI_FIXTURES'];
  if (env !== undefined && env !== '') return resolve(env);
  return resolve(repoRoot(), '..', 'shared', 'fixtures', FIXTURE_NAME);
}

/** The paths of the fixture files inside `dir` (default {@link defaultFixtureDir}). */
export function fixturePaths(dir: string = defaultFixtureDir()): FixturePaths {
  return {
    dir,
    vmlinuz: join(dir, 'vmlinuz'),
    systemMap: join(dir, 'System.map'),
    config: join(dir, 'config'),
    signingKeyDer: join(dir, 'signing_key.x509.der'),
    modulesDir: join(dir, 'modules'),
  };
}

/** True when the kernel fixtures (vmlinuz and System.map at least) exist at `dir`. */
export function fixturesAvailable(dir: string = defaultFixtureDir()): boolean {
  const p = fixturePaths(dir);
  return existsSync(p.vmlinuz) && existsSync(p.systemMap);
}
