/**
 * Issue 15: no input of any command produces a stack trace. A bug that throws past a
 * command's own checks is still exit 2 ("internal error", so a script never takes it for a
 * verdict), with the error's name and message cut to a line; the stack only with HEKI_DEBUG=1.
 * Before, the stack trace was printed to every user.
 */
import test from 'ava';
import { withUsage } from '../../cli/args.ts';

async function crash(message: string): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await withUsage('usage: heki x', { out: () => undefined, err: (s) => void (err += s) }, [], () => Promise.reject(new RangeError(message)));
  return { code, err };
}

test.serial('an internal error is exit 2, one line, no stack trace; HEKI_DEBUG=1 shows the stack', async (t) => {
  const r = await crash(`bad ${'x'.repeat(10_000)}\n\x1b[2J`);
  t.is(r.code, 2);
  t.regex(r.err, /^heki: internal error: RangeError: bad x+…\(\d+ more\) \(set HEKI_DEBUG=1 for the stack\)\n$/);
  t.notRegex(r.err, /\n\s+at /);
  const saved = process.env['HEKI_DEBUG'];
  process.env['HEKI_DEBUG'] = '1';
  try {
    const d = await crash('boom');
    t.is(d.code, 2);
    t.regex(d.err, /^heki: internal error: RangeError: boom\n\s+at /);
  } finally {
    if (saved === undefined) delete process.env['HEKI_DEBUG'];
    else process.env['HEKI_DEBUG'] = saved;
  }
});
