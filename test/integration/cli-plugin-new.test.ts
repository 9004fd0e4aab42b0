/**
 * `heki plugin new`: what a plugin author relies on. The generated test passes as generated,
 * run by ava in a child process both inside this checkout (heki-sim importing itself by name)
 * and in a project of the author's own that installed heki-sim; the generated plugin loads
 * into a real verifier (in process through heki-sim/plugin-testing, and in the verifier
 * worker through pluginModules) and decides; existing files are never overwritten without
 * --force; bad names are refused, naming the problem.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint, { type NodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
import { validateVerdict } from '../../shared/protocol.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { NOP5, SYNTHETIC, jump5, loadPluginModule, patchItem, pluginTestVerifier, syntheticManifestBody } from '../../tools/plugin-testing.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { VERIFIER_WORKER_ENTRY, type VerifierWorkerApi } from '../../shared/worker-api.ts';
import { heki } from '../helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AVA_CLI = join(ROOT, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');

/** Runs ava on `file` in `cwd` as a child process; resolves to its exit code and output. */
function runAva(cwd: string, file: string): Promise<{ code: number; output: string }> {
  // The child is its own ava run: drop what this ava run tells its own workers.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AVA_') && k !== 'NODE_OPTIONS'));
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [AVA_CLI, file], { cwd, env: { ...env, CI: '1' }, timeout: 600_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolvePromise({ code, output: `${stdout}${stderr}` });
    });
  });
}

const scratch: string[] = [];
test.after.always(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/**
 * A plugin author's own project that installed heki-sim, ava and tsx: `npm install <folder>`
 * links a local package, so links stand in for the installs.
 */
function authorProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-plugin-project-'));
  scratch.push(dir);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify(
      { name: 'my-plugins', private: true, type: 'module', ava: { extensions: { ts: 'module' }, nodeArguments: ['--import=tsx'], workerThreads: false } },
      null,
      2,
    ),
  );
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'heki-sim'), 'dir');
  symlinkSync(join(ROOT, 'node_modules', 'ava'), join(dir, 'node_modules', 'ava'), 'dir');
  symlinkSync(join(ROOT, 'node_modules', 'tsx'), join(dir, 'node_modules', 'tsx'), 'dir');
  return dir;
}

test('out of tree: writes plugins/<name>.ts and its test, prints the next commands, and the test passes under ava', async (t) => {
  t.timeout(600_000);
  const project = authorProject();
  const r = await heki(['plugin', 'new', 'lock-kinds'], project);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /^wrote plugins\/lock-kinds\.ts /m);
  t.regex(r.out, /^wrote plugins\/lock-kinds\.test\.ts /m);
  t.regex(r.out, /npx ava plugins\/lock-kinds\.test\.ts/);
  t.regex(r.out, /npx heki run \S+demo\.yaml --record requests\.jsonl/);
  t.regex(r.out, /npx heki replay requests\.jsonl --plugin plugins\/lock-kinds\.ts /);
  t.regex(r.out, /npx heki replay requests\.jsonl --plugin plugins\/lock-kinds\.ts --config '\{"lock-kinds":\{"denyModules":\["crc7"\]\}\}'/);
  t.notRegex(r.out, /Set the project up once/, 'heki-sim is installed: no setup advice');
  const source = readFileSync(join(project, 'plugins', 'lock-kinds.ts'), 'utf8');
  t.regex(source, /from 'heki-sim\/plugin-api'/);
  t.regex(source, /name: NAME/);
  t.regex(source, /const NAME = 'lock-kinds';/);
  t.notRegex(source, /template-plugin/);

  const ava = await runAva(project, 'plugins/lock-kinds.test.ts');
  t.is(ava.code, 0, ava.output);
  t.regex(ava.output, /5 tests passed/);
});

test('in tree: a plugin under this checkout imports heki-sim by name and its test passes under ava', async (t) => {
  t.timeout(600_000);
  // tmp/ is ignored by git: the files never show up in the checkout's status.
  const dir = join(ROOT, 'tmp', `plugin-new-${process.pid}`);
  scratch.push(dir);
  const r = await heki(['plugin', 'new', 'in-tree-policy', '--dir', dir], ROOT);
  t.is(r.code, 0, r.err);
  t.regex(r.out, new RegExp(`npx ava tmp/plugin-new-${process.pid}/in-tree-policy\\.test\\.ts`));
  const ava = await runAva(ROOT, join(dir, 'in-tree-policy.test.ts'));
  t.is(ava.code, 0, ava.output);
  t.regex(ava.output, /5 tests passed/);
});

test('a second generation into the same folder is refused, naming both files, and changes nothing; --force overwrites', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-plugin-new-'));
  scratch.push(dir);
  t.is((await heki(['plugin', 'new', 'twice', '--dir', dir], dir)).code, 0);
  const path = join(dir, 'twice.ts');
  writeFileSync(path, '// my edits\n');
  const again = await heki(['plugin', 'new', 'twice', '--dir', dir], dir);
  t.is(again.code, 2);
  t.is(again.out, '');
  t.is(again.err, 'heki plugin new: twice.ts and twice.test.ts already exist; nothing written (--force overwrites)\n');
  t.is(readFileSync(path, 'utf8'), '// my edits\n');

  rmSync(join(dir, 'twice.test.ts'));
  const one = await heki(['plugin', 'new', 'twice', '--dir', dir], dir);
  t.is(one.code, 2);
  t.regex(one.err, /twice\.ts already exists; nothing written/);
  t.false(existsSync(join(dir, 'twice.test.ts')), 'not even the missing file is written');

  const forced = await heki(['plugin', 'new', 'twice', '--dir', dir, '--force'], dir);
  t.is(forced.code, 0, forced.err);
  t.regex(readFileSync(path, 'utf8'), /const NAME = 'twice';/);
});

test('bad names and bad usage are refused with exit 2, naming the problem, and write nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-plugin-new-'));
  scratch.push(dir);
  const cases: Array<[string[], RegExp]> = [
    [['plugin', 'new', 'MyPolicy'], /plugin name 'MyPolicy' has upper-case letters/],
    [['plugin', 'new', '9lives'], /plugin name '9lives' does not start with a letter/],
    [['plugin', 'new', 'my_policy'], /plugin name 'my_policy' has '_'/],
    [['plugin', 'new', 'my--policy'], /plugin name 'my--policy' has an empty word/],
    [['plugin', 'new', 'policy-'], /plugin name 'policy-' has an empty word/],
    [['plugin', 'new', '../escape'], /plugin name '\.\.\/escape' is a path; give a plain name and the folder with --dir/],
    [['plugin', 'new', 'policy.ts'], /plugin name 'policy\.ts' has a file extension/],
    [['plugin', 'new', `p${'x'.repeat(64)}`], /is 65 characters long, more than 64/],
    [['plugin', 'new', 'ftrace'], /plugin name 'ftrace' is the name of a built-in plugin/],
    [['plugin', 'new', ''], /the plugin name is empty/],
    [['plugin', 'new'], /missing <name>/],
    [['plugin', 'new', 'a', 'b'], /unexpected argument 'b'/],
    [['plugin', 'new', 'a', '--bogus'], /Unknown option '--bogus'/],
    [['plugin'], /missing sub-command \(new\)/],
    [['plugin', 'old', 'a'], /unknown sub-command 'old' \(expected new\)/],
  ];
  for (const [args, message] of cases) {
    const r = await heki(args, dir);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, message, args.join(' '));
    t.regex(r.err, /usage: heki plugin new <name>/, 'the usage follows');
  }
  writeFileSync(join(dir, 'a-file'), '');
  const notDir = await heki(['plugin', 'new', 'ok-name', '--dir', 'a-file'], dir);
  t.is(notDir.code, 2);
  t.regex(notDir.err, /--dir a-file: not a folder/);
  t.deepEqual(
    ['plugins', 'MyPolicy.ts', 'ok-name.ts'].filter((f) => existsSync(join(dir, f))),
    [],
  );
});

test('the generated plugin loads into a real verifier and decides: in process and in the verifier worker', async (t) => {
  const project = authorProject();
  t.is((await heki(['plugin', 'new', 'kinds-gate'], project)).code, 0);
  const pluginPath = join(project, 'plugins', 'kinds-gate.ts');
  const config = { 'kinds-gate': { patchKinds: ['ftrace'], denyModules: ['evil'] } };
  const { site, target } = SYNTHETIC.jump5;
  const jumpOn = patchItem('jump-label', site, NOP5, jump5(site, target));
  const denied = `kinds-gate: jump-label patch at 0x${site.toString(16)}: jump-label patches are not in patchKinds`;

  // In process, after the built-ins, as heki-sim/plugin-testing sets the engine up.
  const plugins = await loadPluginModule(pluginPath);
  const v = pluginTestVerifier({ plugins, pluginConfig: config });
  t.deepEqual(v.plugins().slice(-1), ['kinds-gate']);
  const verdict = v.textPatch([jumpOn]);
  t.false(verdict.ok);
  t.is(verdict.items?.[0]?.reason, denied);
  t.true(pluginTestVerifier({ plugins }).textPatch([jumpOn]).ok, 'unconfigured it changes nothing');

  // In the real verifier worker, through WorkerInit.pluginModules, with a signed manifest.
  const vendor = generateEd25519KeyPair();
  const keyId = ed25519KeyIdHex(vendor.publicKey);
  const manifest = signManifest(syntheticManifestBody(), vendor);
  const keyring = Keyring.fromData({
    ed25519: [{ keyId, role: 'kernel-vendor', publicKey: vendor.publicKey }],
    certificates: [],
    revoked: { ed25519KeyIds: [], x509Sha256: [] },
  });
  if (!keyring.ok) throw new Error(keyring.error);
  const worker = new Worker(VERIFIER_WORKER_ENTRY);
  const api = Comlink.wrap<VerifierWorkerApi>(nodeEndpoint(worker as unknown as NodeEndpoint));
  try {
    const init = await api.init({ keyring: keyring.value.toData(), manifest, pluginModules: [pluginPath], pluginConfig: config });
    if (!init.ok) throw new Error(init.error);
    t.is(init.plugins.at(-1)?.name, 'kinds-gate');
    const answer = validateVerdict(await api.verify({ v: 1, id: 7, vm: 'vm0', kind: 'text-patch', items: [jumpOn] }));
    t.true(answer.ok);
    if (answer.ok) {
      t.false(answer.verdict.ok);
      t.is(answer.verdict.items?.[0]?.reason, denied);
    }
  } finally {
    api[Comlink.releaseProxy]();
    await worker.terminate();
  }
});
