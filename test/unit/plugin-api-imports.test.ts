/**
 * The published plugin API (`heki-sim/plugin-api`, verifier-vm/plugin-api.ts) depends on
 * nothing of the verifier engine: a plugin author's import reaches the protocol, the manifest
 * and keyring types and the plugin's own decision types, never the engine that combines
 * decisions, so the engine can change without the API, and no import circle runs through the
 * API (issue 13: plugin-api -> record-batch -> item-decisions -> plugin-api was one). This
 * follows every static import and re-export, type-only ones included.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The engine's files: what the API must not reach. */
const ENGINE = [
  'verifier-vm/verifier.ts',
  'verifier-vm/plugin-engine.ts',
  'verifier-vm/plugin-result.ts',
  'verifier-vm/record-batch.ts',
  'verifier-vm/request-verdict.ts',
  'verifier-vm/worker.ts',
];

/** The relative modules `file` imports or re-exports, as paths from the repository root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms)) out.push(relative(root, resolve(dirname(join(root, file)), m[1]!)));
  return out;
}

/** Every file reachable from `start`, with the path that first reached it. */
function closure(start: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[start, [start]]]);
  const todo = [start];
  while (todo.length) {
    const f = todo.pop()!;
    for (const g of importsOf(f)) {
      if (seen.has(g)) continue;
      seen.set(g, [...seen.get(f)!, g]);
      todo.push(g);
    }
  }
  return seen;
}

test('heki-sim/plugin-api reaches no file of the engine, and no import leads back to it', (t) => {
  const api = 'verifier-vm/plugin-api.ts';
  const reached = closure(api);
  t.true(reached.has('verifier-vm/plugin-decisions.ts'), 'the walk follows re-exports (ItemDecisions comes from plugin-decisions.ts)');
  t.true(reached.has('shared/protocol.ts'));
  for (const f of ENGINE) t.false(reached.has(f), `${f} is reached: ${reached.get(f)?.join(' -> ')}`);
  for (const [f, path] of reached) if (f !== api) t.false(importsOf(f).includes(api), `a circle: ${path.join(' -> ')} -> ${api}`);
});
