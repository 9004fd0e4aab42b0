/**
 * `cpu:`, `--cpu`, `cpu-online` and `save-memory` through `heki run`: a bad model or an
 * unwritable `out` is exit 2 naming the problem before any machine starts; on the real
 * kernel a 1-present/2-possible model (test/fixtures/cpu-models/qemu64-up-hotplug) brings its
 * second CPU online, and save-memory writes the bytes. The hotplug step holds whether or not
 * boot patched the lock prefixes to UP (its reason says which).
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../cli/command.ts';
import { main } from '../../cli/main.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';
import { needsFixtures } from '../helpers/fixtures.ts';

const HOTPLUG = join(repoRoot(), 'test', 'fixtures', 'cpu-models', 'qemu64-up-hotplug');

async function heki(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd };
  const code = await main(args, io);
  return { code, out, err };
}

function scenario(t: { teardown(f: () => void): void }, body: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'heki-cpu-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 's.yaml');
  writeFileSync(file, body);
  return { dir, file };
}

test('a bad cpu: or --cpu is exit 2 naming the model, before any machine starts', async (t) => {
  const { dir } = scenario(t, 'name: s\ncpu: no-such-model\nsteps:\n  - boot: {}\n');
  const r = await heki(['run', 's.yaml', '--check'], dir);
  t.is(r.code, 2);
  t.regex(r.err, /s\.yaml: 'cpu' CPU model .*no-such-model: no such model \(named models: qemu64-up, skylake-smp2, epyc-smp2\)/);
  writeFileSync(join(dir, 'ok.yaml'), 'name: ok\nsteps:\n  - boot: {}\n');
  const flag = await heki(['run', 'ok.yaml', '--cpu', 'nowhere'], dir);
  t.is(flag.code, 2);
  t.regex(flag.err, /--cpu: CPU model .*nowhere: no such model/);
  const attacks = await heki(['attacks', '--cpu', join(dir, 'ok.yaml')], dir);
  t.is(attacks.code, 2);
  t.regex(attacks.err, /--cpu: CPU model .*ok\.yaml: not a folder/);
});

test('a save-memory out that cannot be written is exit 2 naming the step and the path', async (t) => {
  const { dir } = scenario(t, 'name: s\nsteps:\n  - boot: {}\n  - save-memory: { addr: _stext, len: 16, out: no/such/dir/x.bin }\n');
  const r = await heki(['run', 's.yaml', '--check'], dir);
  t.is(r.code, 2);
  t.regex(r.err, /s\.yaml: step 2 \(save-memory\): 'out' .*no\/such\/dir\/x\.bin: the folder .*no\/such\/dir does not exist/);
});

test('--help of every command that boots names --cpu', async (t) => {
  for (const cmd of ['run', 'demo', 'attacks', 'snapshot', 'bench']) {
    const r = await heki([cmd, '--help'], repoRoot());
    t.regex(r.out + r.err, /--cpu <name\|folder>/, cmd);
  }
});

needsFixtures(test)('cpu-online and save-memory on the real kernel: exit 0, the second CPU online, the bytes written', async (t) => {
  const { dir } = scenario(
    t,
    `name: hotplug
cpu: ${HOTPLUG}
steps:
  - boot: {}
  - cpu-online: { expect: allowed }
  - save-memory: { addr: _stext, len: 4096, out: text.bin, expect: allowed }
`,
  );
  const r = await heki(['run', 's.yaml', '--json'], dir);
  t.is(r.code, 0, r.err + r.out);
  const res = JSON.parse(r.out) as { steps: Array<{ op: string; outcome: string; reason: string }> };
  t.regex(res.steps[1]!.reason, /CPU 1 online \(2 of 2 possible\); (boot kept the lock prefixes|alternatives_enable_smp restored \d+ lock prefix)/);
  t.is(readFileSync(join(dir, 'text.bin')).length, 4096);
});
