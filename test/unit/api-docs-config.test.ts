/**
 * `npm run docs` and the package's exports: every typedoc entry point and every export target
 * exists, and the docs program (tsconfig.docs.json) includes each entry point, so the API
 * reference builds on a fresh clone and `heki-sim/<subpath>` imports resolve. (Running typedoc
 * itself takes most of a minute; this checks what usually breaks it: a moved file.)
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../', import.meta.url));
const json = (file: string): unknown => JSON.parse(readFileSync(join(root, file), 'utf8'));

test('typedoc entry points exist and are in the docs program', (t) => {
  const typedoc = json('typedoc.json') as { entryPoints: string[]; tsconfig: string; out: string };
  const docsProgram = json(typedoc.tsconfig) as { include: string[] };
  t.true(typedoc.entryPoints.length > 0);
  for (const entry of typedoc.entryPoints) {
    t.true(existsSync(join(root, entry)), `${entry} exists`);
    t.true(docsProgram.include.includes(entry), `${entry} is in ${typedoc.tsconfig}`);
  }
  t.is(typedoc.out, 'docs/api');
  t.regex(readFileSync(join(root, '.gitignore'), 'utf8'), /^docs\/api\/$/m, 'the generated reference is not committed');
  t.is((json('package.json') as { scripts: Record<string, string> }).scripts.docs, 'typedoc');
});

test('every package export points at a file, and the plugin API, testing kit and protocol are exported', (t) => {
  const exports = (json('package.json') as { exports: Record<string, string> }).exports;
  for (const [subpath, target] of Object.entries(exports)) t.true(existsSync(join(root, target)), `${subpath} -> ${target}`);
  t.is(exports['./plugin-api'], './verifier-vm/plugin-api.ts');
  t.is(exports['./plugin-testing'], './tools/plugin-testing.ts');
  t.is(exports['./protocol'], './shared/protocol.ts');
});
