/**
 * The benchmark (`npm run bench`, `heki bench [--json] [--quick]`): every figure of issue 7 in
 * one run, with the targets it is checked against. Parts that need the real kernel fixtures
 * report null without them, with the reason; a part that fails reports null with its error.
 */
import type { CpuModel } from '../shared/x86/cpu-model.ts';
import { BenchContext, machineInfo, type MachineInfo } from './context.ts';
import { measureBootLock } from './boot.ts';
import { measureColdBoot } from './cold-boot.ts';
import { measureEpt } from './ept.ts';
import { measureFailover } from './failover.ts';
import { measureFtraceAll } from './ftrace.ts';
import { measureModuleAuth } from './module-auth.ts';
import { measurePatchThroughput } from './patch-throughput.ts';
import type { Progress } from './progress.ts';
import { measureRoundTrip } from './roundtrip.ts';
import { measureScaling } from './scaling.ts';
import { round, si } from './stats.ts';
import { measureBootVerify } from './boot-verify.ts';
import { measureFork } from './fork.ts';

/** The JSON report's keys, exactly (issue 7; `boot_verify_ms` from issue 12; `boot_lock_cold_ms`, `boot_lock_nocache_ms` and `fork_ms` from issue 17). */
export const BENCH_KEYS = [
  'roundtrip_comlink_p50_us',
  'roundtrip_comlink_p99_us',
  'roundtrip_ring_p50_us',
  'roundtrip_ring_p99_us',
  'patch_verifications_per_s',
  'ftrace_all_ms',
  'module_auth_mb_per_s',
  'ept_checks_per_s',
  'boot_lock_ms',
  'boot_lock_cold_ms',
  'boot_lock_nocache_ms',
  'boot_verify_ms',
  'fork_ms',
  'failover_ms',
  'failover_lost',
] as const;

/** One key of the report. */
export type BenchKey = (typeof BENCH_KEYS)[number];

/** The JSON report: every key (null when not measured) and the machine. */
export type BenchJson = { [K in BenchKey]: number | null } & { machine: MachineInfo };

/** A line of the table. */
export interface BenchRow {
  readonly section: string;
  readonly name: string;
  readonly value: string;
  readonly note?: string;
}

/** A target and whether this run met it (undefined: not measured). */
export interface TargetCheck {
  readonly target: string;
  readonly met: boolean | undefined;
  readonly measured: string;
}

/** Everything one run produced. */
export interface BenchReport {
  readonly json: BenchJson;
  readonly rows: readonly BenchRow[];
  readonly targets: readonly TargetCheck[];
  /** Keys that are null, and why. */
  readonly unmeasured: ReadonlyArray<{ readonly key: BenchKey; readonly why: string }>;
}

/** How to run. */
export interface BenchOptions {
  /** Tiny iteration counts (tests, a smoke run). */
  readonly quick: boolean;
  /** Also measure how the costs grow (bench/scaling.ts): table rows only. */
  readonly scaling?: boolean;
  readonly progress: Progress;
  /** The CPU model of every machine the benchmark boots (default: the default model). */
  readonly cpu?: CpuModel;
}

interface Part {
  readonly label: string;
  readonly weight: number;
  run(): Promise<void>;
}

/** Runs the benchmark. Never throws for a failing part: its keys are null, with the error. */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const machine = machineInfo();
  const ctx = new BenchContext(options);
  const json = Object.fromEntries(BENCH_KEYS.map((k) => [k, null])) as { [K in BenchKey]: number | null };
  const rows: BenchRow[] = [];
  const unmeasured: Array<{ key: BenchKey; why: string }> = [];
  const row = (section: string, name: string, value: string, note?: string) => rows.push({ section, name, value, ...(note ? { note } : {}) });
  const noFixtures = `no kernel fixtures at ${ctx.fixtureDir} (set HEKI_FIXTURES)`;
  let comlinkP99: number | undefined;

  const parts: Part[] = [
    {
      label: 'round trip over comlink',
      weight: 2,
      run: async () => {
        const r = await measureRoundTrip(ctx, 'comlink', ctx.n(300, 20_000), ctx.n(100, 2000));
        json.roundtrip_comlink_p50_us = round(r.p50us);
        json.roundtrip_comlink_p99_us = round(r.p99us);
        comlinkP99 = r.p99us;
        row(
          'round trip',
          'comlink p50 / p99 / mean',
          `${r.p50us.toFixed(1)} / ${r.p99us.toFixed(1)} / ${r.meanUs.toFixed(1)} µs`,
          `${r.n} requests, 1 ftrace item, ${r.allowed ? 'allowed (real manifest)' : 'denied (no manifest)'}`,
        );
      },
    },
    {
      label: 'round trip over the ring',
      weight: 2,
      run: async () => {
        const r = await measureRoundTrip(ctx, 'ring', ctx.n(300, 50_000), ctx.n(100, 5000));
        json.roundtrip_ring_p50_us = round(r.p50us);
        json.roundtrip_ring_p99_us = round(r.p99us);
        row(
          'round trip',
          'ring p50 / p99 / mean',
          `${r.p50us.toFixed(2)} / ${r.p99us.toFixed(2)} / ${r.meanUs.toFixed(2)} µs`,
          `${r.n} requests, max ${r.maxUs.toFixed(0)} µs`,
        );
      },
    },
    {
      label: 'batched patch verifications',
      weight: 3,
      run: async () => {
        if (!ctx.haveFixtures) return void unmeasured.push({ key: 'patch_verifications_per_s', why: `${noFixtures}: needs the real manifest's sites` });
        const all = await measurePatchThroughput(ctx, 'ring', 38_252, ctx.n(2, 24), 2);
        json.patch_verifications_per_s = round(all.itemsPerSecond);
        row('patch verification', `ring, ${all.batch}-item batches`, `${si(all.itemsPerSecond)}items/s`, `${all.batches} batches, 2 in flight`);
        const small = await measurePatchThroughput(ctx, 'ring', 1024, ctx.n(8, 400), 4);
        row('patch verification', `ring, ${small.batch}-item batches`, `${si(small.itemsPerSecond)}items/s`, `${small.batches} batches, 4 in flight`);
        const com = await measurePatchThroughput(ctx, 'comlink', 38_252, ctx.n(1, 3), 1);
        row(
          'patch verification',
          `comlink, ${com.batch}-item batches`,
          `${si(com.itemsPerSecond)}items/s`,
          `${com.batches} batches (structured clone of protocol items)`,
        );
      },
    },
    {
      label: 'ftrace on all sites',
      weight: 3,
      run: async () => {
        if (!ctx.haveFixtures) return void unmeasured.push({ key: 'ftrace_all_ms', why: `${noFixtures}: needs the real kernel` });
        const f = await measureFtraceAll(ctx, ctx.n(1, 7));
        json.ftrace_all_ms = round(f.medianMs);
        row(
          'ftrace',
          `enable all ${f.sites} live sites, warm (median)`,
          `${f.medianMs.toFixed(1)} ms`,
          `runs: ${f.warmMs.map((m) => m.toFixed(1)).join(', ')}`,
        );
        row('ftrace', 'enable all, first (cold) run', `${f.coldMs.toFixed(1)} ms`, 'JIT not warm, verifier parked');
        row('ftrace', 'disable all (median)', `${f.disableMedianMs.toFixed(1)} ms`, '2,269 .init.text sites were freed at boot');
      },
    },
    {
      label: 'module authentication',
      weight: 4,
      run: async () => {
        if (!ctx.haveFixtures) return void unmeasured.push({ key: 'module_auth_mb_per_s', why: `${noFixtures}: needs the signed fixture modules` });
        const m = await measureModuleAuth(ctx, ctx.n(1, 10));
        const node = m.figures.find((f) => f.scheme === 'ed25519-node')!;
        json.module_auth_mb_per_s = round(node.mbPerSecond);
        for (const f of m.figures) {
          row(
            'module auth',
            `${f.scheme}: hash + signature + end state`,
            `${f.mbPerSecond.toFixed(1)} MB/s`,
            `${f.modules} modules, ${(f.bytes / 1e6).toFixed(2)} MB`,
          );
          row('module auth', `${f.scheme}: hash + signature only`, `${f.signatureMbPerSecond.toFixed(1)} MB/s`);
        }
        row('module auth', 'SHA-256 alone (node:crypto)', `${m.sha256MbPerSecond.toFixed(0)} MB/s`);
      },
    },
    {
      label: 'EPT checks',
      weight: 2,
      run: async () => {
        const e = await measureEpt(ctx, ctx.n(100, 1500));
        json.ept_checks_per_s = round(e.checksPerSecond);
        row(
          'EPT',
          `Ept.check on the ${e.source}'s EPT`,
          `${si(e.checksPerSecond)}checks/s`,
          `${(e.allowedShare * 100).toFixed(1)} % allowed; frames: ${e.classes.text} text, ${e.classes.rodata} rodata, ${e.classes.data} data`,
        );
        row('EPT', 'Ept.allows (access kind and mode as strings)', `${si(e.allowsPerSecond)}checks/s`);
        row('EPT', 'Ept.get', `${si(e.getsPerSecond)}lookups/s`);
        if (e.vcpuPerSecond !== undefined) row('EPT', 'vCPU read/write/fetch (TLB, checks, EPT, copy)', `${si(e.vcpuPerSecond)}accesses/s`);
      },
    },
    {
      label: 'boot and lock',
      weight: 4,
      run: async () => {
        if (!ctx.haveFixtures) return void unmeasured.push({ key: 'boot_lock_ms', why: `${noFixtures}: needs the real kernel` });
        const b = await measureBootLock(ctx, ctx.n(1, 3));
        json.boot_lock_ms = round(b.totalMs);
        row('boot', 'createMachineDetailed + boot() (median)', `${b.totalMs.toFixed(0)} ms`, `${b.runs} runs`);
        row('boot', '  createMachineDetailed (image, manifest, verifier, load)', `${b.createMs.toFixed(0)} ms`);
        row('boot', '  boot() (guest boot, pins, EPT lock, text check)', `${b.bootMs.toFixed(0)} ms`);
      },
    },
    {
      label: 'boot and lock from a fresh process',
      weight: 6,
      run: async () => {
        if (!ctx.haveFixtures) {
          for (const key of ['boot_lock_cold_ms', 'boot_lock_nocache_ms'] as const) unmeasured.push({ key, why: `${noFixtures}: needs the real kernel` });
          return;
        }
        const c = await measureColdBoot(ctx, ctx.n(1, 3));
        json.boot_lock_cold_ms = round(c.coldMs);
        json.boot_lock_nocache_ms = round(c.noCacheMs);
        row(
          'boot',
          'fresh process, cache warm: create + boot (median)',
          `${c.coldMs.toFixed(0)} ms`,
          `${c.runs} runs; importing the simulator ${c.coldImportMs.toFixed(0)} ms, whole process ${c.coldProcessMs.toFixed(0)} ms`,
        );
        row(
          'boot',
          'fresh process, empty cache: create + boot (median)',
          `${c.noCacheMs.toFixed(0)} ms`,
          `decompresses the vmlinuz and builds the manifest; whole process ${c.noCacheProcessMs.toFixed(0)} ms`,
        );
      },
    },
    {
      label: 'end-of-boot prediction',
      weight: 2,
      run: async () => {
        if (!ctx.haveFixtures) return void unmeasured.push({ key: 'boot_verify_ms', why: `${noFixtures}: needs the real kernel` });
        const v = await measureBootVerify(ctx, ctx.n(1, 5));
        json.boot_verify_ms = round(v.medianMs);
        row(
          'boot',
          "verifier's end-of-boot prediction and comparison of .text (median)",
          `${v.medianMs.toFixed(0)} ms`,
          `${v.runs} runs, CPU model ${v.model}`,
        );
      },
    },
    {
      label: 'fork of a booted machine',
      weight: 3,
      run: async () => {
        if (!ctx.haveFixtures) return void unmeasured.push({ key: 'fork_ms', why: `${noFixtures}: needs the real kernel` });
        const f = await measureFork(ctx, ctx.n(1, 5));
        json.fork_ms = round(f.medianMs);
        row(
          'fork',
          'bootBase + fork() with a warm verifier (median)',
          `${f.medianMs.toFixed(1)} ms`,
          `${f.runs} runs, ${f.sharedPages} pages shared copy-on-write`,
        );
        row('fork', 'fork() starting its verifier on demand', `${f.coldVerifierMs.toFixed(0)} ms`, 'a worker thread starts and initialises');
      },
    },
    {
      label: 'verifier failover',
      weight: 3,
      run: async () => {
        const f = await measureFailover(ctx, ctx.n(1, 5), ctx.n(8, 32));
        json.failover_ms = round(f.medianMs);
        json.failover_lost = f.lost;
        row(
          'failover',
          'injected crash -> first verdict of the spare (median)',
          `${f.medianMs.toFixed(2)} ms`,
          `max ${f.maxMs.toFixed(2)} ms over ${f.trials} trials; link's own (from noticing the death): ${f.linkMedianMs.toFixed(2)} ms`,
        );
        row('failover', 'requests lost', `${f.lost}`, `${f.sent} sent, ${f.answered} answered once each, ${f.failedClosed} failed closed`);
      },
    },
  ];

  if (options.scaling) {
    parts.push({
      label: 'scaling',
      weight: 12,
      run: async () => {
        if (!ctx.haveFixtures) return void row('scaling', 'not measured', noFixtures);
        for (const r of await measureScaling(ctx)) rows.push(r);
      },
    });
  }
  const total = parts.reduce((a, p) => a + p.weight, 0);
  let done = 0;
  for (const p of parts) {
    options.progress(done / total, p.label);
    try {
      await p.run();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      row('errors', p.label, 'failed', why);
      for (const k of keysOf(p.label)) if (json[k] === null && !unmeasured.some((u) => u.key === k)) unmeasured.push({ key: k, why: `failed: ${why}` });
    }
    done += p.weight;
  }
  options.progress(1, 'done');
  const ringP99 = json.roundtrip_ring_p99_us;
  const targets: TargetCheck[] = [
    check(
      'ring round trip p99 <= 10 µs',
      ringP99,
      (v) => v <= 10,
      (v) => `${v} µs`,
    ),
    check(
      'ring p99 at least 10x better than comlink p99',
      ringP99 !== null && comlinkP99 !== undefined ? comlinkP99 / ringP99 : null,
      (v) => v >= 10,
      (v) => `${v.toFixed(1)}x`,
    ),
    check(
      '>= 4 M patch verifications/s',
      json.patch_verifications_per_s,
      (v) => v >= 4e6,
      (v) => `${si(v)}/s`,
    ),
    check(
      'ftrace on all sites < 50 ms',
      json.ftrace_all_ms,
      (v) => v < 50,
      (v) => `${v} ms`,
    ),
    check(
      'module authentication >= 500 MB/s',
      json.module_auth_mb_per_s,
      (v) => v >= 500,
      (v) => `${v} MB/s`,
    ),
    check(
      'boot and lock from a fresh process <= 500 ms',
      json.boot_lock_cold_ms,
      (v) => v <= 500,
      (v) => `${v} ms`,
    ),
    check(
      'EPT checks >= 100 M/s',
      json.ept_checks_per_s,
      (v) => v >= 100e6,
      (v) => `${si(v)}/s`,
    ),
    check(
      'fork of a booted machine <= 20 ms',
      json.fork_ms,
      (v) => v <= 20,
      (v) => `${v} ms`,
    ),
    check(
      'failover <= 10 ms with 0 lost',
      json.failover_ms !== null && json.failover_lost !== null ? json.failover_ms : null,
      (v) => v <= 10 && json.failover_lost === 0,
      (v) => `${v} ms, ${json.failover_lost} lost`,
    ),
  ];
  return { json: { ...json, machine }, rows, targets, unmeasured };
}

function check(target: string, value: number | null, ok: (v: number) => boolean, show: (v: number) => string): TargetCheck {
  return value === null ? { target, met: undefined, measured: 'not measured' } : { target, met: ok(value), measured: show(value) };
}

/** The keys a part fills in. */
function keysOf(label: string): BenchKey[] {
  const map: Record<string, BenchKey[]> = {
    'round trip over comlink': ['roundtrip_comlink_p50_us', 'roundtrip_comlink_p99_us'],
    'round trip over the ring': ['roundtrip_ring_p50_us', 'roundtrip_ring_p99_us'],
    'batched patch verifications': ['patch_verifications_per_s'],
    'ftrace on all sites': ['ftrace_all_ms'],
    'module authentication': ['module_auth_mb_per_s'],
    'EPT checks': ['ept_checks_per_s'],
    'boot and lock': ['boot_lock_ms'],
    'boot and lock from a fresh process': ['boot_lock_cold_ms', 'boot_lock_nocache_ms'],
    'end-of-boot prediction': ['boot_verify_ms'],
    'fork of a booted machine': ['fork_ms'],
    'verifier failover': ['failover_ms', 'failover_lost'],
  };
  return map[label] ?? [];
}

/** The report as text: the machine, the table, the targets, what was not measured. */
export function formatReport(r: BenchReport): string {
  const m = r.json.machine;
  const lines: string[] = [];
  lines.push(
    `heki-sim benchmark on ${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.platform}/${m.arch}, Node ${m.node}, load average ${m.loadavg.join(' ')}`,
  );
  lines.push('');
  const w0 = Math.max(...r.rows.map((x) => x.section.length), 7);
  const w1 = Math.max(...r.rows.map((x) => x.name.length), 4);
  const w2 = Math.max(...r.rows.map((x) => x.value.length), 5);
  for (const x of r.rows) lines.push(`${x.section.padEnd(w0)}  ${x.name.padEnd(w1)}  ${x.value.padStart(w2)}${x.note ? `  (${x.note})` : ''}`);
  lines.push('');
  lines.push('targets:');
  for (const t of r.targets) lines.push(`  ${t.met === undefined ? 'n/a   ' : t.met ? 'met   ' : 'MISSED'}  ${t.target.padEnd(48)} ${t.measured}`);
  if (r.unmeasured.length) {
    lines.push('');
    lines.push('not measured (null in --json):');
    for (const u of r.unmeasured) lines.push(`  ${u.key}: ${u.why}`);
  }
  return `${lines.join('\n')}\n`;
}
