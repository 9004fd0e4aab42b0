/**
 * Replays a request log (shared/request-log.ts) in process: each `verifier` line builds a
 * fresh verifier exactly as the worker would from that init (verifier-vm/verifier-setup.ts),
 * with the plugins under development put in; each request is decided again in file order
 * (the order the recorded verifier decided them), resets forget a VM's state, and every
 * verdict that differs from the recorded one is reported.
 *
 * Text patches take the verifier's record path (Verifier.verifyPatchRecords), as they do on
 * the verification ring, so the 40,000 items of `ftrace enable all` cost no object each.
 */
import { PROTOCOL_VERSION, type Verdict, type VerifyRequest } from '../../shared/protocol.ts';
import { readRequestLog, type LogError, type LogHeader, type LogRequest, type RecordedVerifierInit } from '../../shared/request-log.ts';
import { PatchRecords } from '../../shared/ring/patch-records.ts';
import { err, ok, type Result } from '../../shared/result.ts';
import type { AnyPlugin } from '../../verifier-vm/plugin-api.ts';
import { buildVerifier, pluginsFor } from '../../verifier-vm/verifier-setup.ts';
import { requestSubject, type Verifier } from '../../verifier-vm/verifier.ts';
import type { WorkerInit } from '../../shared/worker-api.ts';
import { diffVerdicts, type Replayed, type VerdictDifference } from './verdict-diff.ts';

/** A plugin under development: loaded from `path`. */
export interface DevPlugin {
  readonly plugin: AnyPlugin;
  readonly path: string;
}

/** Per-plugin configuration by plugin name. */
export type PluginConfig = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** What to replay with. */
export interface ReplayOptions {
  /**
   * Plugins added to every rebuilt verifier. One named like a plugin of the recording
   * (built-in or a recorded plugin module) takes its place, at its position in the order;
   * the others run after the recorded ones.
   */
  readonly plugins: readonly DevPlugin[];
  /** Configuration by plugin name, replacing the recorded configuration of those plugins. */
  readonly config?: PluginConfig;
  /** Hears what the replay works on, before it starts on it (a watchdog's view: cli/replay/replay-runner.ts). */
  readonly watch?: ReplayWatch;
}

/** What a replay is busy with, told before each step that runs plugin code. */
export interface ReplayWatch {
  /** Rebuilding the verifier of a `verifier` line (its plugin modules are imported). */
  rebuilding(line: number): void;
  /** Deciding the request of `line` again. */
  deciding(line: number, kind: string): void;
  /** Done with `line`: reading and parsing the next one (no plugin code runs; a batch line can be megabytes). */
  reading?(line: number): void;
}

/** A request whose replayed verdict differs. */
export interface RequestDifference extends VerdictDifference {
  readonly line: number;
  readonly seq: number;
  readonly vm: string;
  readonly kind: VerifyRequest['kind'];
  /** What the request is about (a module's name, `38252 patches`, ...). */
  readonly subject: string;
}

/** Counts of one request kind. */
export interface KindCounts {
  requests: number;
  same: number;
  differ: number;
  skipped: number;
}

/** What a replay found. */
export interface ReplaySummary {
  readonly header: LogHeader;
  /** Request lines in the file. */
  readonly requests: number;
  /** Decided again with the same verdict. */
  readonly same: number;
  /** Not decided again: the recorded verdict came from the core's link, not a verifier (busy, unavailable), or never came. */
  readonly skipped: number;
  readonly differences: readonly RequestDifference[];
  readonly byKind: ReadonlyMap<string, KindCounts>;
  /** Verifier lines (verifiers rebuilt) and reset lines. */
  readonly verifiers: number;
  readonly resets: number;
  /** The file had its end line (a recording cut short has none). */
  readonly complete: boolean;
  /** For each plugin under development: the recorded plugin it replaced, if any. */
  readonly replaced: ReadonlyMap<string, boolean>;
}

/** True when the recorded verdict was not a verifier's decision (the link's busy or fail-closed answer). */
function undecided(v: Verdict): boolean {
  return v.retryable === true || v.failClosed === true;
}

function subjectOf(r: LogRequest['request']): string {
  return r ? requestSubject(r) : '';
}

/** `recorded` with the plugins under development put in (see {@link ReplayOptions.plugins}). */
function withDevPlugins(recorded: readonly AnyPlugin[], dev: readonly DevPlugin[], replaced: Map<string, boolean>): AnyPlugin[] {
  const out = [...recorded];
  for (const { plugin } of dev) {
    const at = out.findIndex((p) => p.name === plugin.name);
    replaced.set(plugin.name, at >= 0 || (replaced.get(plugin.name) ?? false));
    if (at >= 0) out[at] = plugin;
    else out.push(plugin);
  }
  return out;
}

/**
 * Replays the log at `path`. `onDifference` hears of each difference as it is found. The
 * error names the line of a malformed file, or of a verifier that cannot be rebuilt.
 */
export async function replayLog(path: string, options: ReplayOptions, onDifference?: (d: RequestDifference) => void): Promise<Result<ReplaySummary, LogError>> {
  let header: LogHeader | undefined;
  const verifiers = new Map<string, Verifier>();
  let latest: Verifier | undefined;
  const differences: RequestDifference[] = [];
  const byKind = new Map<string, KindCounts>();
  const replaced = new Map<string, boolean>();
  let requests = 0;
  let same = 0;
  let skipped = 0;
  let verifierLines = 0;
  let resets = 0;
  let complete = false;
  let nextId = 1;
  const counts = (kind: string): KindCounts => {
    let c = byKind.get(kind);
    if (!c) byKind.set(kind, (c = { requests: 0, same: 0, differ: 0, skipped: 0 }));
    return c;
  };

  for await (const read of readRequestLog(path, (h) => (header = h))) {
    if (!read.ok) return err(read.error);
    const { line, entry } = read;
    switch (entry.type) {
      case 'verifier': {
        options.watch?.rebuilding(line);
        const v = await rebuild(entry.init, options, replaced);
        if (!v.ok) return err({ line, message: `cannot rebuild the recorded verifier: ${v.error}` });
        verifiers.set(entry.vm, v.value);
        latest = v.value;
        verifierLines++;
        break;
      }
      case 'reset': {
        const v = verifiers.get(entry.vm) ?? latest;
        if (!v) return err({ line, message: 'a reset before any verifier line' });
        v.resetVm(entry.vm);
        resets++;
        break;
      }
      case 'cpus': {
        const v = verifiers.get(entry.vm) ?? latest;
        if (!v) return err({ line, message: 'a cpus line before any verifier line' });
        const bad = v.setOnlineCpus(entry.vm, entry.online);
        if (bad) return err({ line, message: `the recorded CPU count does not fit the verifier: ${bad}` });
        break;
      }
      case 'end':
        complete = true;
        break;
      case 'request': {
        requests++;
        const c = counts(entry.kind);
        c.requests++;
        const recorded = entry.verdict;
        const request = entry.request;
        if (!recorded || !request || undecided(recorded)) {
          skipped++;
          c.skipped++;
          break;
        }
        const v = verifiers.get(entry.vm) ?? latest;
        if (!v) return err({ line, message: 'a request before any verifier line' });
        options.watch?.deciding(line, entry.kind);
        const replayed = await decide(v, request, nextId++);
        const d = diffVerdicts(request, recorded, replayed);
        if (!d) {
          same++;
          c.same++;
          break;
        }
        c.differ++;
        const diff: RequestDifference = { line, seq: entry.seq, vm: entry.vm, kind: entry.kind, subject: subjectOf(request), ...d };
        differences.push(diff);
        onDifference?.(diff);
        break;
      }
    }
    options.watch?.reading?.(line);
  }
  if (!header) return err({ line: 0, message: 'the file is empty: no header line' });
  return ok({ header, requests, same, skipped, differences, byKind, verifiers: verifierLines, resets, complete, replaced });
}

/** A verifier built from a recorded init with the plugins under development and the configuration overrides. */
async function rebuild(init: RecordedVerifierInit, options: ReplayOptions, replaced: Map<string, boolean>): Promise<Result<Verifier, string>> {
  // The keyring is checked by buildVerifier (Keyring.fromData) before anything uses it.
  const config = {
    ...init,
    ...(init.pluginConfig !== undefined || options.config !== undefined ? { pluginConfig: { ...init.pluginConfig, ...options.config } } : {}),
  } as WorkerInit;
  const recorded = await pluginsFor(config);
  if (!recorded.ok) return recorded;
  const built = buildVerifier(config, withDevPlugins(recorded.value, options.plugins, replaced));
  return built.ok ? ok(built.value.verifier) : built;
}

/**
 * Decides `request` again: text patches on the record path when they fit records, the rest as
 * the worker's comlink path does; a plugin's promise is awaited, as the worker awaits it.
 */
async function decide(v: Verifier, request: NonNullable<LogRequest['request']>, id: number): Promise<Replayed> {
  if (request.kind === 'text-patch') {
    const records = PatchRecords.fromItems(request.items);
    if (typeof records !== 'string') {
      const out = await v.verifyPatchRecords(id, request.vm, records, { async: true });
      return { form: 'packed', verdict: out.verdict, records, ...(out.grants ? { grants: out.grants } : {}) };
    }
  }
  return { form: 'verdict', verdict: await v.verify({ ...request, v: PROTOCOL_VERSION, id }, { async: true }) };
}
