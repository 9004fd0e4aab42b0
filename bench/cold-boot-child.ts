/**
 * One boot and lock in a process of its own (bench/cold-boot.ts starts it): the time to
 * import the simulator, then `createMachineDetailed` and `boot()` of the real kernel, as
 * JSON on stdout. The cache directory is the parent's choice (`HEKI_CACHE_DIR`): warm for
 * `boot_lock_cold_ms`, empty for `boot_lock_nocache_ms`.
 */
const t0 = performance.now();
const { createMachineDetailed } = await import('../machine/machine.ts');
const { fixturePaths } = await import('../shared/kernel-image/fixture-paths.ts');
const t1 = performance.now();
const cpu = process.argv[2];
const m = await createMachineDetailed({ kernel: 'real', keys: { pubkeys: [], certs: [fixturePaths().signingKeyDer], revoked: [] }, ...(cpu ? { cpu } : {}) });
if (!m.ok) {
  process.stderr.write(`${m.error.message}\n`);
  process.exit(2);
}
const t2 = performance.now();
const b = await m.value.boot();
const t3 = performance.now();
await m.value.dispose();
if (b.outcome !== 'allowed') {
  process.stderr.write(`boot: ${b.reason}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1, bootMs: t3 - t2 })}\n`);
