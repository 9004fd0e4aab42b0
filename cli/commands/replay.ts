/**
 * `heki replay`: decides the requests of a recorded run (`heki run --record`) again, in
 * process, with plugins under development, and lists every request whose verdict differs
 * from the recorded one. How a plugin author tests a policy on real traffic without booting
 * anything (docs/plugins.md, "Testing a plugin on recorded traffic").
 */
import { quoteForMessage } from '../../shared/message-text.ts';
import { checkHostFile, MAX_SMALL_INPUT_BYTES, readHostText } from '../../shared/host-file.ts';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { formatLogError } from '../../shared/request-log.ts';
import { loadPluginModule } from '../../verifier-vm/verifier-setup.ts';
import { replayLog, type DevPlugin, type PluginConfig, type ReplaySummary, type RequestDifference } from '../replay/replay-log.ts';
import type { Decided } from '../replay/verdict-diff.ts';

const USAGE = `usage: heki replay <requests.jsonl> [--plugin <module.ts>]... [--config <json|file>] [--json]

Replays a request log written by 'heki run <scenario> --record <requests.jsonl>': rebuilds
each recorded verifier in process (the recorded keyring, signed manifest, plugins, plugin
modules and configuration), adds the plugins under development, decides every recorded
request again in the order the recorded verifier decided them (resets included), and lists
each request whose verdict differs from the recorded one: both decisions and reasons, and
for batches how many items differ, with the first few (site or address, both reasons).
Requests the core's link answered without a verifier (busy, verifier unavailable) are
skipped. Nothing boots.

  --plugin <module>   a plugin module (default export: a plugin or an array of them), as
                      WorkerInit.pluginModules loads them; may be repeated. A plugin named
                      like a recorded one (a built-in such as 'ftrace', or a recorded
                      module's) replaces it at its place in the order; the others run after
                      the recorded plugins
  --config <json>     plugin configuration by plugin name, as JSON or a JSON file:
                      {"kprobe-one-symbol":{"symbol":"vfs_read","length":512}}; replaces the
                      recorded configuration of the plugins it names
  --json              print one object {"file","requests","replayed","same","skipped",
                      "complete","differences":[{"line","seq","vm","kind","subject",
                      "recorded":{"ok","reason"},"replayed":{"ok","reason"},
                      "items"?:{"differ","of","first":[{"index","site"|"addr","recorded","replayed"}]},
                      "grants"?}]}

Exit 0 when no verdict differs, 1 when one does, 2 on bad usage, a malformed log (the line
and the problem named), a plugin module that does not exist or fails to load (named), or a
recorded verifier that cannot be rebuilt.
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

/**
 * Why a plugin outside this checkout may fail to load, when that is the likely cause: it
 * imports heki-sim by name, which resolves only where heki-sim is installed (or inside the
 * checkout), and its folder must be an ES module package.
 */
function setupHint(path: string): string {
  try {
    createRequire(path).resolve('heki-sim/package.json');
    return '';
  } catch {
    return ` (heki-sim cannot be resolved from ${path}: a plugin outside the heki-sim checkout needs a project with "type": "module" and heki-sim installed, 'npm install --save-dev <heki-sim folder>'; 'heki plugin new' prints the setup)`;
  }
}

/** Loads the plugins under development; the error names the module and the problem. */
async function loadDevPlugins(paths: readonly string[], cwd: string): Promise<DevPlugin[] | string> {
  const out: DevPlugin[] = [];
  for (const given of paths) {
    const path = resolve(cwd, given);
    const file = checkHostFile(path, { maxBytes: MAX_SMALL_INPUT_BYTES * 16 });
    if (!file.ok) return `--plugin ${file.error}`;
    let plugins;
    try {
      plugins = await loadPluginModule(path);
    } catch (e) {
      return `--plugin ${path}: cannot load: ${(e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ')}${setupHint(path)}`;
    }
    for (const plugin of plugins) {
      const twice = out.find((p) => p.plugin.name === plugin.name);
      if (twice) return `--plugin ${path}: a plugin named ${plugin.name} is already loaded from ${twice.path}`;
      out.push({ plugin, path });
    }
  }
  return out;
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
      const plugins = await loadDevPlugins(values.plugin ?? [], io.cwd);
      if (typeof plugins === 'string') {
        io.err(`heki replay: ${plugins}\n`);
        return EXIT_USAGE;
      }
      const started = performance.now();
      const r = await replayLog(file, { plugins, ...(config ? { config } : {}) }, (d) => {
        if (!values.json) io.out(formatDifference(d));
      });
      if (!r.ok) {
        io.err(`heki replay: ${formatLogError(display, r.error)}\n`);
        return EXIT_USAGE;
      }
      const s = r.value;
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
          plugins: plugins.map((p) => ({ name: p.plugin.name, path: p.path, replaces: s.replaced.get(p.plugin.name) ?? false })),
          differences: s.differences,
        };
        io.out(`${JSON.stringify(json)}\n`);
      } else {
        const pluginLine = plugins.length
          ? plugins.map((p) => `${p.plugin.name}${s.replaced.get(p.plugin.name) ? ' (replaces the recorded one)' : ''}`).join(', ')
          : 'none (the recorded plugins only)';
        io.out(`\n${display}: scenario '${s.header.scenario ?? '?'}', recorded ${s.header.created}; ${s.verifiers} verifier${s.verifiers === 1 ? '' : 's'}, ${s.resets} reset${s.resets === 1 ? '' : 's'}; plugins under test: ${pluginLine}\n`);
        io.out(formatTable(s));
        const n = s.differences.length;
        io.out(`${n === 0 ? 'no verdict differs' : `${n} of ${s.requests - s.skipped} replayed requests differ`} (${s.requests - s.skipped} replayed, ${s.skipped} skipped, ${seconds.toFixed(1)} s)\n`);
      }
      return s.differences.length === 0 ? EXIT_OK : EXIT_NEGATIVE;
    });
  },
};
