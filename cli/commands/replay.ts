/**
 * `heki replay`: decides the requests of a recorded run (`heki run --record`) again, in
 * process, with plugins under development, and lists every request whose verdict differs
 * from the recorded one. How a plugin author tests a policy on real traffic without booting
 * anything (docs/plugins.md, "Testing a plugin on recorded traffic").
 */
import { quoteForMessage } from '../../shared/message-text.ts';
import { checkHostFile, MAX_SMALL_INPUT_BYTES, readHostText } from '../../shared/host-file.ts';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { formatLogError } from '../../shared/request-log.ts';
import { verifierTimeoutMs } from '../../machine/verifier-timeout.ts';
import { DEFAULT_CEILING_MS, DEFAULT_NO_PROGRESS_MS } from '../../hypervisor/verifier-link/watchdog.ts';
import type { PluginConfig, ReplaySummary, RequestDifference } from '../replay/replay-log.ts';
import { runReplay } from '../replay/replay-runner.ts';
import type { Decided } from '../replay/verdict-diff.ts';

const USAGE = `usage: heki replay <requests.jsonl> [--plugin <module.ts>]... [--config <json|file>] [--json]

Replays a request log written by 'heki run <scenario> --record <requests.jsonl>': rebuilds
each recorded verifier in process (the recorded keyring, signed manifest, plugins, plugin
modules and configuration), adds the plugins under development, decides every recorded
request again in the order the recorded verifier decided them (resets included), and lists
each request whose verdict differs from the recorded one: both decisions and reasons, and
for batches how many items differ, with the first few (site or address, both reasons).
Requests the core's link answered without a verifier (busy, verifier unavailable) are
skipped. Nothing boots. Plugins run in a worker thread: one that loops or never settles its
promise is stopped, naming the line, once the request shows no progress for
HEKI_VERIFIER_TIMEOUT_MS (default 2000 ms), once one request takes 120 s (or that bound,
if longer) however it progresses, or after 20 s (at least twice the bound) while a plugin
module loads.

  --plugin <module>   a plugin module (default export: a plugin or an array of them), as
                      WorkerInit.pluginModules loads them; may be repeated. A plugin named
                      like a recorded one (a built-in such as 'ftrace', or a recorded
                      module's) replaces it at its place in the order; the others run after
                      the recorded plugins
  --config <json>     plugin configuration by plugin name, as JSON or a JSON file:
                      {"kprobe-one-symbol":{"symbol":"vfs_read","length":512}}; replaces the
                      recorded configuration of the plugins it names; every name must be a
                      plugin of the replayed verifier
  --json              print one object {"file","requests","replayed","same","skipped",
                      "complete","differences":[{"line","seq","vm","kind","subject",
                      "recorded":{"ok","reason"},"replayed":{"ok","reason"},
                      "items"?:{"differ","of","first":[{"index","site"|"addr","recorded","replayed"}]},
                      "grants"?}]}

Exit 0 when no verdict differs, 1 when one does, 2 on bad usage, a malformed log (the line
and the problem named), a plugin module that does not exist, fails to load or holds a
malformed plugin (named), configuration for a plugin that does not run, a recorded verifier
that cannot be rebuilt, or a plugin stopped at its time bound. A plugin's malformed answer
is a denial naming it (a verdict difference), never a crash.
`;

/** `--config`: inline JSON or a JSON file, an object of objects. */
function parseConfig(text: string, cwd: string): PluginConfig {
  let source = text;
  let what = '--config';
  if (!text.trimStart().startsWith('{')) {
    const path = resolve(cwd, text);
    const read = readHostText(path, { maxBytes: MAX_SMALL_INPUT_BYTES });
    if (!read.ok) throw new UsageError(`--config ${read.error}`);
    source = read.value;
    what = `--config ${path}`;
  }
  let v: unknown;
  try {
    v = JSON.parse(source);
  } catch (e) {
    throw new UsageError(`${what}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(v)) throw new UsageError(`${what}: must be an object of plugin names to configuration objects`);
  for (const [k, c] of Object.entries(v)) if (!isObj(c)) throw new UsageError(`${what}: the configuration of ${k} must be an object`);
  return v as PluginConfig;
}

const decided = (d: Decided | null): string => (d === null ? 'missing' : d.ok ? 'allowed' : 'denied');

/** The lines of one difference in the readable output. */
function formatDifference(d: RequestDifference): string {
  const lines = [
    `line ${d.line} (seq ${d.seq}, ${d.vm}) ${d.kind}${d.subject ? ` ${d.subject}` : ''}: ${decided(d.recorded)} -> ${decided(d.replayed)}`,
    `    recorded: ${d.recorded.reason}`,
    `    replayed: ${d.replayed.reason}`,
  ];
  if (d.items) {
    lines.push(`    ${d.items.differ} of ${d.items.of} items differ${d.items.differ > d.items.first.length ? `; the first ${d.items.first.length}` : ''}:`);
    for (const it of d.items.first) {
      const where = it.site !== undefined ? ` site ${it.site}` : it.addr !== undefined ? ` addr ${it.addr}` : '';
      lines.push(`      item ${it.index}${where}: ${decided(it.recorded)} -> ${decided(it.replayed)}`);
      lines.push(`        recorded: ${it.recorded?.reason ?? '(no such item)'}`);
      lines.push(`        replayed: ${it.replayed?.reason ?? '(no such item)'}`);
    }
  }
  if (d.grants) lines.push(`    grants differ: recorded ${JSON.stringify(d.grants.recorded)}, replayed ${JSON.stringify(d.grants.replayed)}`);
  return `${lines.join('\n')}\n`;
}

/** The summary table by request kind. */
function formatTable(s: ReplaySummary): string {
  const rows: string[][] = [['kind', 'requests', 'same', 'differ', 'skipped']];
  const total = { requests: 0, same: 0, differ: 0, skipped: 0 };
  for (const [kind, c] of [...s.byKind].sort((a, b) => a[0].localeCompare(b[0]))) {
    rows.push([kind, String(c.requests), String(c.same), String(c.differ), String(c.skipped)]);
    for (const k of ['requests', 'same', 'differ', 'skipped'] as const) total[k] += c[k];
  }
  rows.push(['total', String(total.requests), String(total.same), String(total.differ), String(total.skipped)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** The `heki replay` command. */
export const replayCommand: CliCommand = {
  name: 'replay',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values, positionals } = parseFlags(
        argv,
        { plugin: { type: 'string', multiple: true }, config: { type: 'string' }, json: { type: 'boolean', default: false } },
        { min: 1, max: 1, names: '<requests.jsonl>' },
      );
      const display = positionals[0]!;
      const file = resolve(io.cwd, display);
      const input = checkHostFile(file, { display: quoteForMessage(display) });
      if (!input.ok) {
        io.err(`heki replay: ${input.error}\n`);
        return EXIT_USAGE;
      }
      const config = values.config !== undefined ? parseConfig(values.config, io.cwd) : undefined;
      const timeout = verifierTimeoutMs(undefined);
      if (!timeout.ok) throw new UsageError(timeout.error);
      // The verifier link's bounds: no progress for the bound, or the ceiling on one request.
      const requestMs = timeout.value ?? DEFAULT_NO_PROGRESS_MS;
      const started = performance.now();
      // Plugin code runs in a worker thread under a watchdog: one that loops or never settles
      // is stopped, naming the line (cli/replay/replay-runner.ts).
      const r = await runReplay(
        { file, pluginPaths: values.plugin ?? [], cwd: io.cwd, ...(config ? { config } : {}) },
        { requestMs, requestCeilingMs: Math.max(DEFAULT_CEILING_MS, requestMs), loadMs: Math.max(20_000, 2 * requestMs), startMs: 120_000 },
        (d) => {
          if (!values.json) io.out(formatDifference(d));
        },
      );
      if (r.kind === 'usage' || r.kind === 'stopped') {
        io.err(`heki replay: ${r.message}\n`);
        return EXIT_USAGE;
      }
      if (r.kind === 'log-error') {
        io.err(`heki replay: ${formatLogError(display, r.error)}\n`);
        return EXIT_USAGE;
      }
      const plugins = r.plugins;
      const s = r.summary;
      const seconds = (performance.now() - started) / 1000;
      if (!s.complete) io.err(`heki replay: warning: ${display} has no end line: the recording was cut short; replayed what it holds\n`);
      if (values.json) {
        const json = {
          file: display,
          scenario: s.header.scenario ?? null,
          requests: s.requests,
          replayed: s.requests - s.skipped,
          same: s.same,
          skipped: s.skipped,
          complete: s.complete,
          plugins: plugins.map((p) => ({ name: p.name, path: p.path, replaces: s.replaced.get(p.name) ?? false })),
          differences: s.differences,
        };
        io.out(`${JSON.stringify(json)}\n`);
      } else {
        const pluginLine = plugins.length
          ? plugins.map((p) => `${p.name}${s.replaced.get(p.name) ? ' (replaces the recorded one)' : ''}`).join(', ')
          : 'none (the recorded plugins only)';
        io.out(
          `\n${display}: scenario '${s.header.scenario ?? '?'}', recorded ${s.header.created}; ${s.verifiers} verifier${s.verifiers === 1 ? '' : 's'}, ${s.resets} reset${s.resets === 1 ? '' : 's'}; plugins under test: ${pluginLine}\n`,
        );
        io.out(formatTable(s));
        const n = s.differences.length;
        io.out(
          `${n === 0 ? 'no verdict differs' : `${n} of ${s.requests - s.skipped} replayed requests differ`} (${s.requests - s.skipped} replayed, ${s.skipped} skipped, ${seconds.toFixed(1)} s)\n`,
        );
      }
      return s.differences.length === 0 ? EXIT_OK : EXIT_NEGATIVE;
    });
  },
};
