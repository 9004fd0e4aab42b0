/**
 * Boot and lock from a fresh process (issue 17's cold start): each run starts
 * bench/cold-boot-child.ts in a new Node process, which imports the simulator and boots the
 * real kernel once. `cold` runs use the host cache (shared/kernel-image/vmlinux-cache.ts:
 * the decompressed vmlinux and the manifest body, filled by a first run); `nocache` runs
 * point `HEKI_CACHE_DIR` at an empty directory, so they decompress the vmlinuz and build
 * the manifest. The figure is `createMachineDetailed` + `boot()` inside the child; the
 * child's import time (tsx compiling the simulator's TypeScript) and the whole process's
 * wall time are reported beside it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './context.ts';
import { median } from './stats.ts';

const CHILD = fileURLToPath(new URL('./cold-boot-child.ts', import.meta.url));

/** One child's figures. */
interface ChildRun {
  readonly importMs: number;
  readonly createMs: number;
  readonly bootMs: number;
  readonly processMs: number;
}

/** Fresh-process boot-and-lock figures (medians). */
export interface ColdBoot {
  /** create + boot with the cache warm. */
  readonly coldMs: number;
  /** create + boot with an empty cache. */
  readonly noCacheMs: number;
  readonly coldImportMs: number;
  readonly coldProcessMs: number;
  readonly noCacheProcessMs: number;
  readonly runs: number;
}

function runChild(cpu: string | undefined, env: NodeJS.ProcessEnv): Promise<ChildRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import=tsx', CHILD, ...(cpu ? [cpu] : [])], { env, maxBuffer: 1 << 20, timeout: 300_000 }, (e, stdout, stderr) => {
      if (e) return reject(new Error(`cold boot child: ${stderr.trim() || e.message}`));
      const r = JSON.parse(stdout) as Omit<ChildRun, 'processMs'>;
      resolve({ ...r, processMs: performance.now() - started });
    });
  });
}

/** Boots in `runs` fresh processes with the cache warm and `runs` with it empty. */
export async function measureColdBoot(ctx: BenchContext, runs: number): Promise<ColdBoot> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel (fixtures)');
  const cpu = ctx.cpu?.name;
  await runChild(cpu, process.env); // fills the cache
  const cold: ChildRun[] = [];
  for (let i = 0; i < runs; i++) cold.push(await runChild(cpu, process.env));
  const noCache: ChildRun[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'heki-nocache-'));
    try {
      noCache.push(await runChild(cpu, { ...process.env, HEKI_CACHE_DIR: dir }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const total = (r: ChildRun): number => r.createMs + r.bootMs;
  return {
    coldMs: median(cold.map(total)),
    noCacheMs: median(noCache.map(total)),
    coldImportMs: median(cold.map((r) => r.importMs)),
    coldProcessMs: median(cold.map((r) => r.processMs)),
    noCacheProcessMs: median(noCache.map((r) => r.processMs)),
    runs,
  };
}
