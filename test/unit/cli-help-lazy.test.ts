/**
 * Issue 15, class 11: `heki --help` took 2-5 s because cli/main.ts imported every command,
 * and with them the machine, the verifier and the kernel parsers. The command table now
 * loads a command's module only when that command runs or prints its usage. (How fast that
 * is on this host belongs to `npm run bench`, not to a timed assertion here.)
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { COMMANDS, main } from '../../cli/main.ts';

const MAIN = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

test('cli/main.ts imports no command module statically: only the table of names and summaries', (t) => {
  const staticImports = [...readFileSync(MAIN, 'utf8').matchAll(/^import\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);
  t.true(staticImports.length > 0);
  t.deepEqual(
    staticImports.filter(
      (p) =>
        p.includes('/commands/') ||
        p.includes('machine/') ||
        p.includes('scenario/') ||
        p.includes('checks/') ||
        p.includes('report/') ||
        p.includes('hypervisor/') ||
        p.includes('verifier-vm/'),
    ),
    [],
    'nothing heavy is loaded for --help',
  );
});

test('every command in the table loads, has the name it is listed under, and prints its usage', async (t) => {
  for (const entry of COMMANDS) {
    const cmd = await entry.load();
    t.is(cmd.name, entry.name);
    let out = '';
    t.is(await main([entry.name, '--help'], { out: (s) => void (out += s), err: () => undefined, cwd: process.cwd() }), 0);
    t.regex(out, new RegExp(`^usage: heki ${entry.name}`), entry.name);
  }
  let top = '';
  t.is(await main(['--help'], { out: (s) => void (top += s), err: () => undefined, cwd: process.cwd() }), 0);
  for (const entry of COMMANDS) t.true(top.includes(`  ${entry.name.padEnd(13)}  ${entry.summary}`), entry.name);
});
