/**
 * Parses a scenario file (YAML, docs/scenarios.md) into a {@link Scenario}, or the list of
 * every problem found, each with its line. Nothing here touches a machine: addresses are
 * checked for syntax only; symbols are resolved when the step runs.
 */
import { DEFAULT_HYPERVISOR, HYPERVISOR_KINDS, type HypervisorKind } from '../shared/hypervisor-kind.ts';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { err, ok, type Result } from '../shared/result.ts';
import { choices, MapReader } from './map-reader.ts';
import { Problems, type ScenarioProblem } from './problems.ts';
import { isStepKind, STEP_KINDS, type Expectation, type Scenario, type ScenarioKeys, type Step, type StepAction, type StepKind } from './scenario.ts';
import { STEP_SPECS, type StepSpec } from './steps.ts';
import { BUILTIN_CPU_MODELS } from '../shared/x86/cpu-models-builtin.ts';

/** The top-level keys of a scenario. */
export const TOP_LEVEL_KEYS = ['name', 'description', 'kernel', 'cpu', 'hypervisor', 'vmlinuz', 'system-map', 'keys', 'steps'] as const;
/** The keys of `keys`. */
export const KEY_FILE_KINDS = ['pubkeys', 'certs', 'revoked'] as const;
const EXPECTATIONS: readonly Expectation[] = ['allowed', 'denied', 'error'];

/** Where the text came from. */
export interface ParseOptions {
  /** Absolute path of the file: relative paths inside resolve against its folder. */
  readonly path: string;
  /** How messages name the file (default: `path`), e.g. the path as the user typed it. */
  readonly display?: string;
}

/** Why a file is not a usable scenario. */
export interface ScenarioParseError {
  /** The file as messages name it. */
  readonly file: string;
  /** At least one problem, in line order. */
  readonly problems: readonly ScenarioProblem[];
}

/** One `file:line: message` line per problem. */
export function formatParseError(e: ScenarioParseError): string {
  return e.problems.map((p) => `${e.file}:${p.line}: ${p.message}`).join('\n');
}

/** Parses scenario `text`. Never throws. */
export function parseScenario(text: string, options: ParseOptions): Result<Scenario, ScenarioParseError> {
  const file = options.display ?? options.path;
  const dir = dirname(options.path);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  const problems = new Problems(lines, text);
  const fail = (): Result<Scenario, ScenarioParseError> => err({ file, problems: problems.sorted() });

  for (const e of doc.errors) problems.add(e.pos[0], `YAML syntax error: ${e.message}`);
  if (problems.count > 0) return fail();

  const root = doc.contents as Node | null;
  if (root === null || (isScalar(root) && root.value === null)) {
    problems.add(1, `the file is empty; a scenario is a mapping with 'name' and 'steps'`);
    return fail();
  }
  if (!isMap(root)) {
    problems.add(root, `a scenario must be a mapping with 'name' and 'steps', not ${isSeq(root) ? 'a list' : 'a single value'}`);
    return fail();
  }

  const top = new MapReader(problems, '', root, TOP_LEVEL_KEYS, root, 'top-level key');
  const name = top.text('name', true);
  if (name !== undefined && name.trim() === '') top.problem(top.at('name'), `'name' must not be empty`);
  const description = top.text('description');
  const kernel = top.choice('kernel', ['real', 'synthetic'] as const, 'real');
  const paths: { vmlinuz?: string; systemMap?: string } = {};
  for (const [key, field] of [
    ['vmlinuz', 'vmlinuz'],
    ['system-map', 'systemMap'],
  ] as const) {
    if (!top.has(key)) continue;
    const p = nonEmptyPath(top, key);
    if (p === undefined) continue;
    if (kernel === 'synthetic') top.problem(top.at(key), `'${key}' applies only to kernel: real`);
    else paths[field] = resolve(dir, p);
  }
  let cpu: string | undefined;
  if (top.has('cpu')) {
    const c = nonEmptyPath(top, 'cpu');
    if (c !== undefined) {
      if (kernel === 'synthetic') top.problem(top.at('cpu'), `'cpu' applies only to kernel: real`);
      // A named model as written; anything else is a reference folder beside the scenario.
      else cpu = BUILTIN_CPU_MODELS.has(c) ? c : resolve(dir, c);
    }
  }
  let hypervisor: HypervisorKind | undefined;
  if (top.has('hypervisor')) {
    hypervisor = top.choice('hypervisor', HYPERVISOR_KINDS, DEFAULT_HYPERVISOR);
    if (hypervisor !== undefined && kernel === 'synthetic') top.problem(top.at('hypervisor'), `'hypervisor' applies only to kernel: real`);
  }
  const keys = readKeys(top, problems, dir);
  const steps = readSteps(top, problems, dir);

  if (problems.count > 0 || name === undefined || kernel === undefined || keys === undefined || steps === undefined) return fail();
  return ok({
    name: name.trim(),
    ...(description !== undefined ? { description } : {}),
    file: options.path,
    kernel,
    ...(cpu !== undefined ? { cpu } : {}),
    ...(hypervisor !== undefined ? { hypervisor } : {}),
    ...paths,
    keys,
    steps,
  });
}

/** A path value that must not be empty. */
function nonEmptyPath(f: MapReader, key: string): string | undefined {
  const p = f.text(key, true);
  if (p !== undefined && p.trim() === '') {
    f.problem(f.at(key), `'${key}' must not be empty`);
    return undefined;
  }
  return p;
}

/** `keys: { pubkeys: [...], certs: [...], revoked: [...] }`, each optional, paths resolved. */
function readKeys(top: MapReader, problems: Problems, dir: string): ScenarioKeys | undefined {
  const node = top.node('keys');
  if (node === undefined || node === null) return { pubkeys: [], certs: [], revoked: [] };
  if (!isMap(node)) {
    top.problem(node, `'keys' must be a mapping like { certs: [signing_key.x509.der] } (with ${choices(KEY_FILE_KINDS)})`);
    return undefined;
  }
  const f = new MapReader(problems, 'keys: ', node, KEY_FILE_KINDS, node);
  const read = (kind: (typeof KEY_FILE_KINDS)[number]): string[] | undefined => {
    const items = f.texts(kind, { scalarOk: true });
    if (items === undefined) return undefined;
    if (items.some((p) => p.trim() === '')) {
      f.problem(f.at(kind), `'${kind}' has an empty path`);
      return undefined;
    }
    return items.map((p) => resolve(dir, p));
  };
  const pubkeys = read('pubkeys');
  const certs = read('certs');
  const revoked = read('revoked');
  if (pubkeys === undefined || certs === undefined || revoked === undefined) return undefined;
  return { pubkeys, certs, revoked };
}

/** The `steps` list: at least one step, each a one-key mapping `kind: {params}`. */
function readSteps(top: MapReader, problems: Problems, dir: string): Step[] | undefined {
  if (!top.has('steps')) {
    top.missing('steps');
    return undefined;
  }
  const node = top.node('steps');
  if (!isSeq(node)) {
    top.problem(top.at('steps'), `'steps' must be a list of steps, like '- boot: {}'`);
    return undefined;
  }
  if (node.items.length === 0) {
    top.problem(node, `'steps' is empty; a scenario needs at least one step`);
    return undefined;
  }
  const steps: Step[] = [];
  node.items.forEach((item, i) => {
    const step = readStep(item as Node | null, i + 1, problems, dir, node);
    if (step !== undefined) steps.push(step);
  });
  return steps.length === node.items.length ? steps : undefined;
}

/** One step. */
function readStep(item: Node | null, index: number, problems: Problems, dir: string, list: Node): Step | undefined {
  const where = item ?? list;
  if (item === null || (isScalar(item) && item.value === null)) {
    problems.add(where, `step ${index}: is empty; write its kind, like '- boot: {}'`);
    return undefined;
  }
  if (!isMap(item)) {
    const hint = isScalar(item) && typeof item.value === 'string' && isStepKind(item.value) ? `'- ${item.value}: {}'` : `'- boot: {}'`;
    problems.add(item, `step ${index}: must be a mapping of one step kind to its parameters, like ${hint}`);
    return undefined;
  }
  const pairs = item.items;
  const first = pairs[0];
  if (first === undefined) {
    problems.add(item, `step ${index}: is empty ({}); write its kind, like '- boot: {}'`);
    return undefined;
  }
  const keyNode = first.key as Node | null;
  const kind = isScalar(keyNode) && typeof keyNode.value === 'string' ? keyNode.value : undefined;
  if (kind === undefined) {
    problems.add(keyNode ?? item, `step ${index}: the step kind must be a plain name (${STEP_KINDS.join(', ')})`);
    return undefined;
  }
  if (!isStepKind(kind)) {
    problems.add(keyNode, `step ${index}: unknown step kind '${kind}' (expected one of: ${STEP_KINDS.join(', ')})`);
    return undefined;
  }
  const label = `step ${index} (${kind}): `;
  if (pairs.length > 1) {
    const extra = pairs.slice(1).map((p) => (isScalar(p.key) ? String(p.key.value) : '?'));
    const at = pairs[1]!.key as Node | null;
    problems.add(
      at ?? item,
      extra.includes('expect')
        ? `${label}'expect' goes inside the step's parameters, like '- ${kind}: {..., expect: denied}'`
        : `${label}has sibling keys (${extra.join(', ')}); indent the parameters under '${kind}:' or start a new '- ' item for another step`,
    );
    return undefined;
  }
  const value = first.value as Node | null;
  const isEmpty = value === null || (isScalar(value) && value.value === null);
  if (!isEmpty && !isMap(value)) {
    problems.add(value, `${label}parameters must be a mapping, like '- ${kind}: {${kind === 'boot' ? '' : '...'}}'`);
    return undefined;
  }
  const params = isMap(value) ? value : null;
  const spec = STEP_SPECS[kind] as unknown as StepSpec<StepKind>;
  const f = new MapReader(problems, label, params, [...spec.keys, 'expect'], keyNode);
  const expect = f.has('expect') ? f.choice('expect', EXPECTATIONS) : null;
  const action: StepAction | undefined = spec.parse(f, { dir });
  if (action === undefined || expect === undefined) return undefined;
  return { ...action, index, line: problems.lineOf(item), expect };
}
