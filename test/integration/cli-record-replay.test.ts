/**
 * `heki run --record` on the real kernel, then `heki replay` of that recording, through the
 * CLI in process: the file holds the verifier's configuration and every request with its
 * verdict; replayed with the recorded plugins nothing differs (exit 0); a policy plugin
 * under test shows exactly the requests it changes, with both reasons (exit 1); malformed
 * logs and plugin modules that do not load are exit 2, named.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RequestLogReader, type LogEntry, type LogRequest } from '../../shared/request-log.ts';
import { fixtures, haveFixtures, needsFixtures, readFixtureModule } from '../helpers/fixtures.ts';
import { heki, type CliRun as Run } from '../helpers/cli.ts';

const realTest = needsFixtures(test);
const PLUGINS = fileURLToPath(new URL('../fixtures/replay/', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'heki-record-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const LOG = join(dir, 'requests.jsonl');

/** A scenario: boot, signed modules, ftrace on all sites and off, and a tampered module that is denied. */
function scenario(): string {
  const tampered = readFixtureModule('cordic').slice();
  tampered[0x200] = (tampered[0x200] as number) ^ 0xff; // inside the ELF, so the signature no longer matches
  writeFileSync(join(dir, 'cordic-tampered.ko'), tampered);
  const mod = (n: string): string => join(fixtures.modulesDir, `${n}.ko`);
  return `name: record-replay
kernel: real
keys:
  certs: [${fixtures.signingKeyDer}]
steps:
  - boot: {}
  - load-module: { path: ${mod('crc7')}, expect: allowed }
  - load-module: { path: ${mod('virtio_net')}, expect: allowed }
  - load-module: { path: ${mod('kvm-intel')}, expect: allowed }
  - ftrace: { enable: all, expect: allowed }
  - ftrace: { disable: all, expect: allowed }
  - load-module: { path: cordic-tampered.ko, expect: denied }
  - unload-module: { name: crc7, expect: allowed }
`;
}

let recording: Promise<Run> | undefined;
/** Records the scenario once (the first test that needs it waits for it). */
function recorded(): Promise<Run> {
  if (!haveFixtures) throw new Error('fixtures missing');
  recording ??= (async () => {
    writeFileSync(join(dir, 'scenario.yaml'), scenario());
    return heki(['run', 'scenario.yaml', '--record', 'requests.jsonl'], dir);
  })();
  return recording;
}

/** The log's entries (after the header), each with its line. */
function entries(path: string): Array<{ line: number; entry: LogEntry }> {
  const reader = new RequestLogReader();
  const out: Array<{ line: number; entry: LogEntry }> = [];
  for (const text of gunzipSync(readFileSync(path)).toString('utf8').split('\n')) {
    if (text === '') continue;
    const r = reader.line(text);
    if (!r.ok) throw new Error(`line ${r.error.line}: ${r.error.message}`);
    if (r.entry) out.push({ line: r.line, entry: r.entry });
  }
  return out;
}

const requestsOf = (es: ReturnType<typeof entries>): Array<{ line: number; entry: LogRequest }> =>
  es.filter((e): e is { line: number; entry: LogRequest } => e.entry.type === 'request');

/** The first ftrace site of the recorded `ftrace enable all` batch. */
function firstFtraceSite(): string {
  const batch = requestsOf(entries(LOG)).find((r) => r.entry.kind === 'text-patch')!.entry.request;
  if (batch?.kind !== 'text-patch') throw new Error('no text-patch request recorded');
  return `0x${batch.items[0]!.site.toString(16)}`;
}

realTest('heki run --record writes the verifier configuration and every request with its verdict, in order', async (t) => {
  const run = await recorded();
  t.is(run.code, 0, run.err + run.out);
  t.regex(run.out, /record: 23 requests, [\d.]+ MB of JSON lines, [\d.]+ MB gzip-compressed in .*requests\.jsonl/);
  const es = entries(LOG);
  const first = es[0]!.entry;
  t.is(first.type, 'verifier');
  if (first.type === 'verifier') {
    t.is(typeof first.init.manifest, 'string', 'the signed manifest text');
    t.true((first.init.keyring as { certificates: unknown[] }).certificates.length > 0, 'the keyring with the Debian certificate');
  }
  t.is(es.at(-1)!.entry.type, 'end');
  const reqs = requestsOf(es).map((r) => r.entry);
  t.deepEqual(
    reqs.map((r) => `${r.kind}${r.request && 'name' in r.request ? ` ${r.request.name}` : ''}`),
    [
      'kernel-text',
      // Each load is followed by the end of the module's init (do_init_module()).
      ...['crc7', 'virtio_ring', 'virtio', 'failover', 'net_failover', 'virtio_net', 'irqbypass', 'kvm', 'kvm_intel'].flatMap((n) => [
        `module-load ${n}`,
        `module-init-free ${n}`,
      ]),
      'text-patch',
      'text-patch',
      'module-load cordic',
      'module-unload crc7',
    ],
  );
  t.deepEqual(
    reqs.map((r) => r.seq),
    reqs.map((_, i) => i),
    'one verdict at a time here: decision order is send order',
  );
  const enable = reqs[19]!;
  t.true(enable.verdict!.ok);
  t.is(enable.verdict!.items!.length, enable.request!.kind === 'text-patch' ? enable.request!.items.length : -1);
  t.true(enable.verdict!.items!.length > 40_000, 'every ftrace site, modules included, in one batch');
  const cordic = reqs[21]!;
  t.false(cordic.verdict!.ok);
  t.regex(cordic.verdict!.reason, /module-pkcs7/);
});

realTest('replay with the recorded plugins: every verdict is the same, exit 0', async (t) => {
  t.is((await recorded()).code, 0);
  const r = await heki(['replay', LOG, '--json'], dir);
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { requests: number; replayed: number; same: number; skipped: number; complete: boolean; differences: unknown[] };
  t.deepEqual(
    { requests: j.requests, replayed: j.replayed, same: j.same, skipped: j.skipped, complete: j.complete, differences: j.differences },
    { requests: 23, replayed: 23, same: 23, skipped: 0, complete: true, differences: [] },
  );
  const text = await heki(['replay', LOG], dir);
  t.is(text.code, 0);
  t.regex(text.out, /text-patch\s+2\s+2\s+0\s+0/);
  t.regex(text.out, /no verdict differs/);
});

realTest('replay with a policy that refuses ftrace at one site: exit 1, the batch and the item named with both reasons', async (t) => {
  t.is((await recorded()).code, 0);
  const site = firstFtraceSite();
  const args = ['replay', LOG, '--plugin', join(PLUGINS, 'deny-ftrace-site.ts'), '--config', JSON.stringify({ 'deny-ftrace-site': { site } })];
  const r = await heki([...args, '--json'], dir);
  t.is(r.code, 1, r.err);
  const j = JSON.parse(r.out) as {
    same: number;
    differences: Array<{
      line: number;
      seq: number;
      kind: string;
      recorded: { ok: boolean; reason: string };
      replayed: { ok: boolean; reason: string };
      items: {
        differ: number;
        of: number;
        first: Array<{ index: number; site: string; recorded: { ok: boolean; reason: string }; replayed: { ok: boolean; reason: string } }>;
      };
    }>;
  };
  t.is(j.differences.length, 1, 'only the enabling batch: disabling is not refused');
  const d = j.differences[0]!;
  t.is(d.kind, 'text-patch');
  t.is(d.seq, 19);
  t.deepEqual(d.recorded, { ok: true, reason: `all ${d.items.of} items allowed` });
  t.false(d.replayed.ok);
  t.is(d.replayed.reason, `1 of ${d.items.of} items denied; first: deny-ftrace-site: tracing ${site} is not allowed`);
  t.is(d.items.differ, 1);
  t.is(d.items.first[0]!.index, 0);
  t.is(d.items.first[0]!.site, site);
  t.true(d.items.first[0]!.recorded.ok);
  t.regex(d.items.first[0]!.recorded.reason, /^ftrace: /);
  t.deepEqual(d.items.first[0]!.replayed, { ok: false, reason: `deny-ftrace-site: tracing ${site} is not allowed` });
  t.is(j.same, 22);

  const text = await heki(args, dir);
  t.is(text.code, 1);
  t.true(text.out.includes(`line ${d.line} (seq 19, vm0) text-patch`), text.out);
  t.true(text.out.includes(`item 0 site ${site}: allowed -> denied`), text.out);
  t.regex(text.out, /1 of 23 replayed requests differ/);
});

realTest('replay with a policy that refuses a module: the load is listed with both reasons, exit 1', async (t) => {
  t.is((await recorded()).code, 0);
  const r = await heki(
    ['replay', LOG, '--plugin', join(PLUGINS, 'refuse-module.ts'), '--config', JSON.stringify({ 'refuse-module': { name: 'virtio_ring' } }), '--json'],
    dir,
  );
  t.is(r.code, 1, r.err);
  const j = JSON.parse(r.out) as {
    differences: Array<{ kind: string; subject: string; recorded: { ok: boolean; reason: string }; replayed: { ok: boolean; reason: string } }>;
  };
  const load = j.differences.find((d) => d.kind === 'module-load');
  t.truthy(load);
  t.is(load!.subject, 'virtio_ring');
  t.true(load!.recorded.ok);
  t.deepEqual(load!.replayed, { ok: false, reason: 'refuse-module: virtio_ring is not on the allow list' });
  // What depends on it fails too, as it would have in the run: virtio needs virtio_ring's exports.
  t.true(j.differences.some((d) => d.kind === 'module-load' && d.subject === 'virtio' && !d.replayed.ok));
});

realTest('a plugin named like a built-in replaces it', async (t) => {
  t.is((await recorded()).code, 0);
  const r = await heki(['replay', LOG, '--plugin', join(PLUGINS, 'abstaining-kprobe.ts'), '--json'], dir);
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { plugins: Array<{ name: string; replaces: boolean }> };
  t.deepEqual(
    j.plugins.map((p) => ({ name: p.name, replaces: p.replaces })),
    [{ name: 'kprobe', replaces: true }],
  );
});

realTest('a cut-short recording (no end line) replays what it holds, with a warning', async (t) => {
  t.is((await recorded()).code, 0);
  const lines = gunzipSync(readFileSync(LOG))
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '');
  const cut = join(dir, 'cut.jsonl');
  writeFileSync(cut, `${lines.slice(0, 4).join('\n')}\n`);
  const r = await heki(['replay', cut, '--json'], dir);
  t.is(r.code, 0, r.err);
  t.regex(r.err, /has no end line: the recording was cut short/);
  t.is((JSON.parse(r.out) as { requests: number }).requests, 2);
});

/** A log of `lines` in the temp folder. */
function log(name: string, lines: string[]): string {
  const p = join(dir, name);
  writeFileSync(p, lines.map((l) => `${l}\n`).join(''));
  return p;
}

const HEADER = '{"format":"heki-request-log","version":1,"protocol":1,"created":"2025-01-01T00:00:00.000Z"}';

test('malformed logs are exit 2 naming the line and the problem', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    [
      'bad-json.jsonl',
      [
        HEADER,
        '{"type":"request","seq":0,"vm":"vm0","kind":"module-unload","request":{"kind":"module-unload","vm":"vm0","name":"m"},"verdict":null}',
        '{"type": oops',
      ],
      /bad-json\.jsonl:3: not JSON/,
    ],
    ['no-header.jsonl', ['{"type":"reset","vm":"vm0","why":"reboot"}'], /no-header\.jsonl:1: not a heki request log: the first line must be the header/],
    ['version.jsonl', [HEADER.replace('"version":1', '"version":7')], /version\.jsonl:1: request log version 7 is not supported \(this heki reads version 1\)/],
    [
      'bad-request.jsonl',
      [HEADER, '{"type":"request","seq":0,"vm":"vm0","kind":"module-unload","request":{"kind":"module-unload","vm":"vm0","name":7},"verdict":null}'],
      /bad-request\.jsonl:2: request\.name must be a string/,
    ],
    [
      'bad-bytes.jsonl',
      [
        HEADER,
        '{"type":"request","seq":0,"vm":"vm0","kind":"text-patch","request":{"kind":"text-patch","vm":"vm0","items":[{"kind":"ftrace","site":{"$bigint":"0x10"},"oldBytes":{"$hex":"0f1"},"newBytes":{"$hex":"00"},"currentBytes":{"$hex":"00"}}]},"verdict":null}',
      ],
      /bad-bytes\.jsonl:2: \$hex must be a string of lowercase hex digit pairs/,
    ],
    ['unknown-type.jsonl', [HEADER, '{"type":"teleport"}'], /unknown-type\.jsonl:2: unknown line type "teleport"/],
    [
      'no-verifier.jsonl',
      [
        HEADER,
        '{"type":"request","seq":0,"vm":"vm0","kind":"module-unload","request":{"kind":"module-unload","vm":"vm0","name":"m"},"verdict":{"v":1,"id":1,"ok":true,"reason":"x","plugins":[]}}',
      ],
      /no-verifier\.jsonl:2: a request before any verifier line/,
    ],
    ['empty.jsonl', [], /empty\.jsonl: the file is empty: no header line/],
    ['after-end.jsonl', [HEADER, '{"type":"end","requests":0}', '{"type":"end","requests":0}'], /after-end\.jsonl:3: a line after the end line/],
    ['end-count.jsonl', [HEADER, '{"type":"end","requests":3}'], /end-count\.jsonl:2: the end line counts 3 requests, the file has 0/],
  ];
  for (const [name, lines, want] of cases) {
    const r = await heki(['replay', log(name, lines)], dir);
    t.is(r.code, 2, name);
    t.regex(r.err, want, name);
    t.is(r.out, '', `${name}: nothing on stdout`);
  }
});

test('bad usage and plugin modules that do not load are exit 2, named', async (t) => {
  const ok = log('ok.jsonl', [HEADER, '{"type":"end","requests":0}']);
  const missing = await heki(['replay', ok, '--plugin', 'nowhere/plugin.ts'], dir);
  t.is(missing.code, 2);
  t.regex(missing.err, /--plugin .*nowhere\/plugin\.ts: cannot read: no such file/);
  const notPlugin = await heki(['replay', ok, '--plugin', join(PLUGINS, 'not-a-plugin.ts')], dir);
  t.is(notPlugin.code, 2);
  t.regex(notPlugin.err, /--plugin .*not-a-plugin\.ts: cannot load: .*default export is not a verifier plugin/);
  const twice = await heki(['replay', ok, '--plugin', join(PLUGINS, 'refuse-module.ts'), '--plugin', join(PLUGINS, 'refuse-module.ts')], dir);
  t.is(twice.code, 2);
  t.regex(twice.err, /a plugin named refuse-module is already loaded/);
  const badConfig = await heki(['replay', ok, '--config', '{"x": 1}'], dir);
  t.is(badConfig.code, 2);
  t.regex(badConfig.err, /--config: the configuration of x must be an object/);
  t.is((await heki(['replay'], dir)).code, 2);
  const noFile = await heki(['replay', 'nothing.jsonl'], dir);
  t.is(noFile.code, 2);
  t.regex(noFile.err, /nothing\.jsonl: cannot read: no such file/);
  const empty = await heki(['replay', ok], dir);
  t.is(empty.code, 0, 'a log without requests: nothing differs');
});

test('a plugin outside the checkout that cannot resolve heki-sim: exit 2 with the setup it needs', async (t) => {
  // The temp folder is outside the checkout: no package.json, no node_modules/heki-sim.
  const ok = log('ok-outside.jsonl', [HEADER, '{"type":"end","requests":0}']);
  const plugin = join(dir, 'outside-plugin.ts');
  writeFileSync(
    plugin,
    "import type { VerifierPlugin } from 'heki-sim/plugin-api';\nimport { isKind } from 'heki-sim/plugin-api';\nconst p: VerifierPlugin<'module-load'> = { name: 'outside', kinds: ['module-load'], decide: (r) => ({ decision: isKind(r, 'module-load') ? 'allow' : 'abstain', reason: 'ok' }) };\nexport default p;\n",
  );
  const r = await heki(['replay', ok, '--plugin', plugin], dir);
  t.is(r.code, 2);
  t.regex(r.err, /outside-plugin\.ts: cannot load: .*heki-sim cannot be resolved from .*needs a project with "type": "module" and heki-sim installed/);
});

test('heki run --record: a file that cannot be written is exit 2 before anything runs', async (t) => {
  writeFileSync(join(dir, 'tiny.yaml'), 'name: tiny\nkernel: real\nsteps:\n  - boot: {}\n');
  const r = await heki(['run', 'tiny.yaml', '--record', join(dir, 'no-such-dir', 'x.jsonl')], dir);
  t.is(r.code, 2);
  t.regex(r.err, /--record .*no-such-dir\/x\.jsonl: cannot write/);
});
