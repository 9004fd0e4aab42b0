/**
 * A CPU hotplug in a request log (shared/request-log.ts `cpus` line, cli/replay/): the
 * recorded verifier configuration keeps the VM's CPU model (`init.vms`), and replay tells the
 * rebuilt verifier the CPUs the VMM brought online, so a lock-prefix restore the recorded
 * verifier allowed after the hotplug is allowed again, and one before it denied again.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestLogReader, encodeLogLine, logHeader } from '../../shared/request-log.ts';
import { replayLog } from '../../cli/replay/replay-log.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { K, syntheticBody } from './plugin-synthetic.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';
import type { PatchItem } from '../../shared/protocol.ts';

const keys = testKeyring();
const LOCK = K.text + 0x500n;
const manifest = signManifest({ ...syntheticBody(), smpLocks: [LOCK.toString(16)] }, keys.vendor);
const model = { ...BUILTIN_CPU_MODELS.get('qemu64-up')!, name: 'up-2', possibleCpus: 2 };
const item: PatchItem = { kind: 'smp-lock', site: LOCK, oldBytes: Uint8Array.of(0x3e), newBytes: Uint8Array.of(0xf0), currentBytes: Uint8Array.of(0x3e) };
const request = { kind: 'text-patch', vm: 'vm0', items: [item] };
const verdict = (ok: boolean, reason: string) => ({
  v: 1,
  id: 1,
  ok,
  reason: ok ? 'all 1 items allowed' : `1 of 1 items denied; first: ${reason}`,
  plugins: ['smp-lock'],
  items: [{ ok, reason }],
});

function log(t: { teardown(f: () => void): void }, lines: unknown[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-replay-cpus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'run.jsonl');
  writeFileSync(path, [logHeader({ scenario: 'hotplug' }), ...lines].map((l) => encodeLogLine(l as never)).join('\n') + '\n');
  return path;
}

test('replay applies the recorded CPU hotplug: the same verdicts before and after it', async (t) => {
  const before = `smp-lock: lock-prefix restore at .smp_locks site 0x${LOCK.toString(16)} (kernel) before the VMM brought a second CPU online (1 online)`;
  const path = log(t, [
    { type: 'verifier', vm: 'vm0', init: { keyring: keys.data, manifest, vms: { vm0: { cpuModel: model } } } },
    { type: 'request', seq: 0, vm: 'vm0', kind: 'text-patch', request, verdict: verdict(false, before) },
    { type: 'cpus', vm: 'vm0', online: 2 },
    {
      type: 'request',
      seq: 1,
      vm: 'vm0',
      kind: 'text-patch',
      request,
      verdict: verdict(true, `smp-lock: .smp_locks site 0x${LOCK.toString(16)} (kernel) -> lock prefix`),
    },
    { type: 'end', requests: 2 },
  ]);
  const r = await replayLog(path, { plugins: [] });
  if (!r.ok) return t.fail(r.error.message);
  t.is(r.value.differences.length, 0, JSON.stringify(r.value.differences.map((d) => d.replayed.reason)));
  t.is(r.value.same, 2);
});

test('a cpus line the verifier cannot take, or a malformed one, names the line', async (t) => {
  const over = log(t, [
    { type: 'verifier', vm: 'vm0', init: { keyring: keys.data, manifest, vms: { vm0: { cpuModel: model } } } },
    { type: 'cpus', vm: 'vm0', online: 3 },
  ]);
  const r = await replayLog(over, { plugins: [] });
  t.false(r.ok);
  if (!r.ok) t.regex(`${r.error.line}: ${r.error.message}`, /^3: the recorded CPU count does not fit the verifier: 3 CPUs online is not an integer/);
  const reader = new RequestLogReader();
  t.true(reader.line(JSON.stringify(logHeader({}))).ok);
  const bad = reader.line('{"type":"cpus","vm":"vm0","online":0}');
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.error.message, /cpus\.online must be a positive integer/);
});
