/**
 * Test access to the real kernel fixtures. Tests that need them wrap `test` with
 * {@link needsFixtures}, which turns them into skipped tests (with a message saying where the
 * fixtures were looked for) when the fixture directory is absent, or, with
 * `HEKI_REQUIRE_FIXTURES=1` (as `.ci/run` sets it), into failing tests: so no fixture-gated
 * test can pass in CI by being skipped.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext, TestFn } from 'ava';
import { loadKernelImage } from '../../shared/kernel-image/load-kernel.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { defaultFixtureDir, fixturePaths, fixturesAvailable, type FixturePaths } from '../../shared/kernel-image/fixture-paths.ts';

/** The fixture directory tests use (`$HEKI_FIXTURES` or the default beside the repo). */
export const fixtureDir: string = defaultFixtureDir();
/** The fixture files inside {@link fixtureDir}. */
export const fixtures: FixturePaths = fixturePaths(fixtureDir);
/** True when the fixtures are present (every file the tests read: see {@link missingFixtureFiles}). */
export const haveFixtures: boolean = fixturesAvailable(fixtureDir) && missingFixtureFiles().length === 0;

/**
 * Is `HEKI_REQUIRE_FIXTURES` set to 1? Then a test whose fixtures (or other outside
 * references) are missing fails instead of being skipped. Unset, empty or 0: it is skipped.
 */
export function fixturesRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env['HEKI_REQUIRE_FIXTURES'];
  if (v === undefined || v === '' || v === '0') return false;
  if (v === '1') return true;
  throw new Error(`HEKI_REQUIRE_FIXTURES must be 1 (fail when fixtures are missing) or 0, got ${JSON.stringify(v.slice(0, 40))}`);
}

/** The fixture files the tests read that are missing from {@link fixtureDir}. */
export function missingFixtureFiles(): string[] {
  return [fixtures.vmlinuz, fixtures.systemMap, fixtures.signingKeyDer, fixtures.modulesDir].filter((p) => !existsSync(p));
}

/** A test-registering function with the plain `(title, impl)` shape. */
export type SimpleTestFn = (title: string, impl: (t: ExecutionContext) => void | Promise<void>) => void;

const warned = new Set<string>();

/**
 * `test` when nothing is `missing`; else, with {@link fixturesRequired}, a test that fails
 * saying what is missing, and without it `test.skip` (printing once why the tests are
 * skipped). `missing` says what is missing and how to provide it.
 */
export function unlessMissing(test: TestFn, missing: string | undefined): SimpleTestFn {
  if (missing === undefined) return (title, impl) => test(title, impl);
  const required = fixturesRequired();
  if (!warned.has(missing)) {
    warned.add(missing);
    console.log(required ? `${missing} (HEKI_REQUIRE_FIXTURES=1: the tests that need it fail)` : `${missing}: the tests that need it are skipped`);
  }
  if (required) return (title) => test(title, (t) => t.fail(`${missing}, and HEKI_REQUIRE_FIXTURES=1 makes that a failure, not a skip`));
  return (title, impl) => test.skip(title, impl);
}

/** Why the fixtures are unusable (where they were looked for), or undefined when they are present. */
export const fixturesMissing: string | undefined = haveFixtures ? undefined : `fixtures not found at ${fixtureDir}; set HEKI_FIXTURES`;

/** {@link unlessMissing} for the kernel fixtures: `test` when they exist. */
export function needsFixtures(test: TestFn): SimpleTestFn {
  return unlessMissing(test, fixturesMissing);
}

/** Length of the module-signature magic `~Module signature appended~\n`. */
const SIG_MAGIC = '~Module signature appended~\n';
/** `sizeof(struct module_signature)` (include/linux/module_signature.h). */
const MODULE_SIGNATURE_SIZE = 12;

/** The raw bytes of fixture module `name` (without `.ko`), signature trailer included. */
export function readFixtureModule(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(fixtures.modulesDir, `${name}.ko`)));
}

/**
 * The ELF part of a signed fixture module: the file minus the magic, the 12-byte
 * `struct module_signature` (sig_len big-endian in its last 4 bytes) and the signature.
 * Throws when the trailer is missing: the fixtures are known to be signed.
 */
export function fixtureModuleElf(name: string): Uint8Array {
  const file = readFixtureModule(name);
  const magic = new TextDecoder().decode(file.subarray(file.length - SIG_MAGIC.length));
  if (magic !== SIG_MAGIC) throw new Error(`${name}.ko has no module signature trailer`);
  const infoEnd = file.length - SIG_MAGIC.length;
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const sigLen = dv.getUint32(infoEnd - 4, false);
  return file.subarray(0, infoEnd - MODULE_SIGNATURE_SIZE - sigLen);
}

let kernelPromise: Promise<KernelImage> | undefined;

/**
 * The fixture kernel, loaded once per test process (decompressed or from the vmlinux cache)
 * and shared by every test that asks. Rejects with the loader's message on failure.
 */
export function loadFixtureKernel(): Promise<KernelImage> {
  kernelPromise ??= loadKernelImage({ vmlinuzPath: fixtures.vmlinuz, systemMapPath: fixtures.systemMap }).then((r) => {
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  });
  return kernelPromise;
}
