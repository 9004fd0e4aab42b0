/**
 * `heki plugin new <name>`: writes a verifier plugin and its ava test from the template in
 * cli/plugin-template/ (a working policy, commented where the author adds theirs), so a
 * plugin author starts from code that follows docs/plugins.md and a test that passes.
 *
 * The files import heki-sim by package name (`heki-sim/plugin-api`, `heki-sim/protocol`,
 * `heki-sim/plugin-testing`, package.json "exports"): inside a checkout that is the package
 * importing itself, elsewhere the installed package, so a plugin moves between the two
 * unchanged.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { makeOutputDir } from '../../shared/host-output.ts';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';

const USAGE = `usage: heki plugin new <name> [--dir <path>] [--force]

Writes a verifier plugin <dir>/<name>.ts and its ava test <dir>/<name>.test.ts (docs/plugins.md).
The plugin starts with a working policy you then change: it limits text patches to the kinds
in its "patchKinds" configuration and refuses the modules in "denyModules"; the test passes as
written. Exit 0 printing the files and what to run next; 2 on a bad name or when a file exists
(then nothing is written).

  <name>         the plugin's name (its \`name\`, the key of its configuration) and file name:
                 lowercase letters and digits in words joined by single '-', starting with a
                 letter, at most 64 characters, not the name of a built-in plugin
  --dir <path>   the folder to write into, created if missing (default: plugins/ in the
                 current directory; in a heki-sim checkout \`npm test\` runs plugins/**/*.test.ts)
  --force        overwrite existing files

The files import heki-sim by name (heki-sim/plugin-api, heki-sim/plugin-testing): inside a
heki-sim checkout that is the checkout itself; elsewhere install heki-sim in your project
(npm install --save-dev <path to heki-sim> ava tsx) and run ava with tsx, as the command
prints (README.md, "Write a verifier plugin").
`;

/** The template's own name, replaced by the new plugin's everywhere in both files. */
const TEMPLATE_NAME = 'template-plugin';
const TEMPLATE_DIR = fileURLToPath(new URL('../plugin-template/', import.meta.url));
/** The root of this heki-sim checkout or installed package. */
const HEKI_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NAME_MAX = 64;

/** What is wrong with `name` as a plugin name, or undefined when it is a good one. */
export function pluginNameProblem(name: string): string | undefined {
  if (name === '') return 'the plugin name is empty';
  if (name.includes('/') || name.includes('\\')) return `plugin name '${name}' is a path; give a plain name and the folder with --dir`;
  if (name.endsWith('.ts') || name.endsWith('.js'))
    return `plugin name '${name}' has a file extension; give the name alone (the files are <name>.ts and <name>.test.ts)`;
  if (name.length > NAME_MAX) return `plugin name '${name.slice(0, 20)}...' is ${name.length} characters long, more than ${NAME_MAX}`;
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name)) {
    const why = /[A-Z]/.test(name)
      ? 'has upper-case letters'
      : /^[^a-z]/.test(name)
        ? 'does not start with a letter'
        : /--|-$/.test(name)
          ? "has an empty word ('--' or a trailing '-')"
          : `has '${/[^a-z0-9-]/.exec(name)?.[0] ?? '?'}'`;
    return `plugin name '${name}' ${why}: use lowercase letters and digits in words joined by single '-', starting with a letter (e.g. ftrace-allowlist)`;
  }
  if (BUILTIN_PLUGINS.some((p) => p.name === name)) {
    return `plugin name '${name}' is the name of a built-in plugin; plugin names must be unique (built-ins: ${BUILTIN_PLUGINS.map((p) => p.name).join(', ')})`;
  }
  return undefined;
}

/** The template file `file` with the new plugin's name in it. */
function instantiate(file: string, name: string): string {
  return readFileSync(join(TEMPLATE_DIR, file), 'utf8').replaceAll(TEMPLATE_NAME, name);
}

/** How `dir` reaches heki-sim: it is inside this checkout, or some ancestor installed heki-sim, or neither. */
function hekiReach(dir: string): { kind: 'checkout'; root: string } | { kind: 'installed'; project: string } | { kind: 'none' } {
  for (let d = dir; ; d = dirname(d)) {
    const pkg = join(d, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'heki-sim') return { kind: 'checkout', root: d };
      } catch {
        // an unreadable package.json is not ours; keep looking
      }
    }
    if (existsSync(join(d, 'node_modules', 'heki-sim', 'package.json'))) return { kind: 'installed', project: d };
    if (dirname(d) === d) return { kind: 'none' };
  }
}

/** `p` as the user would type it from `cwd`: relative when inside it, else absolute. */
function shown(cwd: string, p: string): string {
  const r = relative(cwd, p);
  return r === '' ? '.' : r.startsWith('..') || isAbsolute(r) ? p : r;
}

/** The `heki plugin` command. */
export const pluginCommand: CliCommand = {
  name: 'plugin',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const [sub, ...rest] = argv;
      if (sub === undefined) throw new UsageError('missing sub-command (new)');
      if (sub !== 'new') throw new UsageError(`unknown sub-command '${sub}' (expected new)`);
      const { values, positionals } = parseFlags(
        rest,
        { dir: { type: 'string' }, force: { type: 'boolean', default: false } },
        { min: 1, max: 1, names: '<name>' },
      );
      const name = positionals[0]!;
      const problem = pluginNameProblem(name);
      if (problem !== undefined) throw new UsageError(problem);
      if (values.dir === '') throw new UsageError('--dir is empty');
      const dir = resolve(io.cwd, values.dir ?? 'plugins');
      if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`--dir ${values.dir}: not a folder`);
      const pluginPath = join(dir, `${name}.ts`);
      const testPath = join(dir, `${name}.test.ts`);
      const files = [
        { path: pluginPath, text: instantiate(`${TEMPLATE_NAME}.ts`, name) },
        { path: testPath, text: instantiate(`${TEMPLATE_NAME}.test.ts`, name) },
      ];
      if (values.force !== true) {
        const existing = files.filter((f) => existsSync(f.path)).map((f) => shown(io.cwd, f.path));
        if (existing.length > 0) {
          io.err(`heki plugin new: ${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; nothing written (--force overwrites)\n`);
          return EXIT_USAGE;
        }
      }
      const made = makeOutputDir(dir);
      if (!made.ok) {
        io.err(`heki plugin new: ${made.error}\n`);
        return EXIT_USAGE;
      }
      try {
        for (const f of files) writeFileSync(f.path, f.text, { flag: values.force === true ? 'w' : 'wx' });
      } catch (e) {
        io.err(`heki plugin new: cannot write into ${shown(io.cwd, dir)}: ${e instanceof Error ? e.message : String(e)}\n`);
        return EXIT_USAGE;
      }
      io.out(
        `wrote ${shown(io.cwd, pluginPath)}  (plugin '${name}': limits text patches to its patchKinds, refuses its denyModules)\n` +
          `wrote ${shown(io.cwd, testPath)}  (its ava test, on an in-process verifier with a synthetic kernel)\n\n` +
          nextSteps(io.cwd, dir, pluginPath, testPath),
      );
      return EXIT_OK;
    });
  },
};

/** What to run next, as commands that work from `cwd` (or from where they say). */
function nextSteps(cwd: string, dir: string, pluginPath: string, testPath: string): string {
  const reach = hekiReach(dir);
  const lines: string[] = [];
  const heki = 'npx heki';
  let scenario: string;
  if (reach.kind === 'checkout') {
    const inRoot = relative(reach.root, testPath).split(sep).join('/');
    const prefix = shown(cwd, reach.root) === '.' ? '' : `cd ${shown(cwd, reach.root)} && `;
    lines.push('Next:', `  ${prefix}npx ava ${inRoot}    # run its test`);
    scenario = shown(cwd, join(reach.root, 'scenarios', 'demo.yaml'));
  } else {
    if (reach.kind === 'none') {
      lines.push(
        `${shown(cwd, dir)} is outside heki-sim and no node_modules/heki-sim is above it. Set the project up once:`,
        `  npm init -y && npm pkg set type=module`,
        `  npm install --save-dev ${HEKI_ROOT.replace(/[\\/]$/, '')} ava tsx`,
        `  and in package.json: "ava": { "extensions": { "ts": "module" }, "nodeArguments": ["--import=tsx"], "workerThreads": false }`,
        '',
      );
    }
    lines.push('Next:', `  npx ava ${shown(cwd, testPath)}    # run its test (from your project's folder)`);
    scenario = shown(cwd, join(HEKI_ROOT, 'scenarios', 'demo.yaml'));
  }
  const plugin = shown(cwd, pluginPath);
  const name = basename(pluginPath, '.ts');
  lines.push(
    `  ${heki} run ${scenario} --record requests.jsonl    # record what a real run asks the verifier`,
    `  ${heki} replay requests.jsonl --plugin ${plugin}    # decide them again with your plugin: no difference yet`,
    `  ${heki} replay requests.jsonl --plugin ${plugin} --config '{"${name}":{"denyModules":["crc7"]}}'    # now crc7's load differs`,
  );
  return `${lines.join('\n')}\n`;
}
