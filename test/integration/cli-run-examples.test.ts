/**
 * The example scenarios on the real machine (machine/machine.ts and the Debian 6.1
 * fixtures): `heki run scenarios/<file> --json` exits 0 with every step as expected. Skipped,
 * with a message saying why, when the machine or the fixtures are not there.
 */
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CliIo } from '../../cli/command.ts';
import { main } from '../../cli/main.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';
import { fixturesMissing, unlessMissing } from '../helpers/fixtures.ts';

const root = repoRoot();
const files = readdirSync(join(root, 'scenarios')).filter((f) => f.endsWith('.yaml'));

/** Why the machine cannot be used here, or undefined. (It is loaded once, as `heki run` does.) */
async function machineProblem(): Promise<string | undefined> {
  if (!existsSync(join(root, 'machine', 'machine.ts'))) return 'machine/machine.ts is not there yet';
  try {
    await import('../../machine/machine.ts');
    return undefined;
  } catch (e) {
    return `machine/machine.ts cannot be loaded yet (${e instanceof Error ? e.message : String(e)})`;
  }
}

const why = fixturesMissing ?? (await machineProblem());
const exampleTest = unlessMissing(test, why === undefined ? undefined : `cli-run-examples: ${why}`);

for (const file of files) {
  exampleTest(`heki run scenarios/${file} --json: every step as expected, exit 0`, async (t) => {
    let out = '';
    let err = '';
    const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd: root };
    const code = await main(['run', `scenarios/${file}`, '--json'], io);
    const failed =
      out === ''
        ? err
        : (JSON.parse(out) as { steps: Array<{ index: number; op: string; outcome: string; expected: string | null; ok: boolean; reason: string }> }).steps
            .filter((s) => !s.ok)
            .map((s) => `step ${s.index} (${s.op}): ${s.outcome}, expected ${s.expected ?? '-'}: ${s.reason}`)
            .join('\n');
    t.is(code, 0, failed);
  });
}
