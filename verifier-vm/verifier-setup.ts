/**
 * Building a verifier engine from a {@link WorkerInit}: the keyring, the enabled built-in
 * plugins, the plugin modules, the signed manifest, the plugin configuration. The worker
 * (worker.ts) does this at `init`; `heki replay` (cli/commands/replay.ts) does the same in
 * process from a recorded init, so a replayed verifier is set up exactly as the recorded one.
 */
import { pathToFileURL } from 'node:url';
import { err, ok, type Result } from '../shared/result.ts';
import { Keyring } from './keyring.ts';
import { loadManifest } from './manifest.ts';
import { BUILTIN_PLUGINS } from './plugins/index.ts';
import { Verifier } from './verifier.ts';
import type { AnyPlugin } from './plugin-api.ts';
import { REQUEST_KINDS, describeValue, type RequestKind } from '../shared/protocol.ts';
import type { WorkerInit } from '../shared/worker-api.ts';
import { checkVmConfigs } from './vm-config.ts';

/** What a plugin's name may be: a letter or digit, then letters, digits and `-_.:@/`, at most 64 characters. */
export const PLUGIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}$/;

/**
 * Checks one plugin a module exports and returns the engine's own copy of it (its name, kinds
 * and description read once; its hooks called on the plugin object), or the problem. A plugin
 * is code of the user's: it is refused at load, naming what is wrong, not trusted to be well
 * formed when the first request comes.
 */
export function checkPlugin(value: unknown): AnyPlugin | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return `it is ${describeValue(value)}, not an object {name, description, kinds, decide}`;
  try {
    const q = value as Record<string, unknown>;
    const { name, description, kinds, decide, decideRecords, commit, commitRecords } = q;
    if (typeof name !== 'string' || !PLUGIN_NAME.test(name)) {
      return `its name is ${describeValue(name)}; a plugin's name is 1 to 64 letters, digits and -_.:@/, starting with a letter or digit`;
    }
    const named = (problem: string): string => `${name} ${problem}`;
    if (typeof description !== 'string' || description.length > 1024) return named('needs a description: a string of at most 1024 characters');
    if (!Array.isArray(kinds) || kinds.length === 0)
      return named(`claims no request kinds (kinds is ${describeValue(kinds)}; known kinds: ${REQUEST_KINDS.join(', ')})`);
    const seen = new Set<string>();
    for (const k of kinds as unknown[]) {
      if (typeof k !== 'string' || !(REQUEST_KINDS as readonly string[]).includes(k))
        return named(`claims the unknown request kind ${describeValue(k)} (known kinds: ${REQUEST_KINDS.join(', ')})`);
      if (seen.has(k)) return named(`claims ${k} twice`);
      seen.add(k);
    }
    if (typeof decide !== 'function') return named('has no decide function');
    for (const [hook, f] of [
      ['decideRecords', decideRecords],
      ['commit', commit],
      ['commitRecords', commitRecords],
    ] as const) {
      if (f !== undefined && typeof f !== 'function') return named(`has a ${hook} that is not a function`);
    }
    const call =
      (f: unknown) =>
      (...args: unknown[]): unknown =>
        (f as (...a: unknown[]) => unknown).apply(value, args);
    return {
      name,
      description,
      kinds: [...seen] as RequestKind[],
      decide: call(decide) as AnyPlugin['decide'],
      ...(decideRecords !== undefined ? { decideRecords: call(decideRecords) as NonNullable<AnyPlugin['decideRecords']> } : {}),
      ...(commit !== undefined ? { commit: call(commit) as NonNullable<AnyPlugin['commit']> } : {}),
      ...(commitRecords !== undefined ? { commitRecords: call(commitRecords) as NonNullable<AnyPlugin['commitRecords']> } : {}),
    };
  } catch (e) {
    return `it cannot be read: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * The plugins of a plugin module (its default export: a plugin or a non-empty array of them),
 * each checked by {@link checkPlugin}. Throws, naming the module and the problem, when the
 * module cannot be imported or a plugin in it is malformed.
 */
export async function loadPluginModule(path: string): Promise<AnyPlugin[]> {
  const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  const d = mod.default;
  if (d === undefined) throw new Error(`${path}: has no default export (a verifier plugin or an array of them)`);
  const list: unknown[] = Array.isArray(d) ? d : [d];
  if (list.length === 0) throw new Error(`${path}: its default export is an empty array: no plugin`);
  const out: AnyPlugin[] = [];
  for (const [i, p] of list.entries()) {
    const checked = checkPlugin(p);
    const which = Array.isArray(d) ? `default export [${i}]` : 'default export';
    if (typeof checked === 'string') throw new Error(`${path}: ${which} is not a verifier plugin: ${checked}`);
    if (out.some((o) => o.name === checked.name)) throw new Error(`${path}: two plugins are named ${checked.name}`);
    out.push(checked);
  }
  return out;
}

/**
 * The plugins `config` asks for, in order: the enabled built-ins (all by default), then the
 * plugins of each of `pluginModules`. The error names an unknown built-in or the module that
 * failed to load.
 */
export async function pluginsFor(config: WorkerInit): Promise<Result<AnyPlugin[], string>> {
  let plugins: AnyPlugin[] = [...BUILTIN_PLUGINS];
  if (config.plugins) {
    const unknown = config.plugins.filter((n) => !BUILTIN_PLUGINS.some((p) => p.name === n));
    if (unknown.length) return err(`unknown plugin(s): ${unknown.join(', ')}`);
    plugins = BUILTIN_PLUGINS.filter((p) => config.plugins!.includes(p.name));
  }
  for (const path of config.pluginModules ?? []) {
    try {
      plugins.push(...(await loadPluginModule(path)));
    } catch (e) {
      return err(`cannot load plugin module ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return ok(plugins);
}

/** A verifier engine built from an init, with what the worker reports about it. */
export interface BuiltVerifier {
  readonly verifier: Verifier;
  /** The manifest's kernel and signing key, when the init carried a manifest. */
  readonly manifest?: { kernel: string; keyId: string };
}

/**
 * The engine for `config` with `plugins` (from {@link pluginsFor}, possibly changed by the
 * caller): the keyring validated, the manifest checked against its kernel-vendor keys. The
 * error names what was refused.
 */
export function buildVerifier(config: WorkerInit, plugins: readonly AnyPlugin[]): Result<BuiltVerifier, string> {
  // Configuration for a plugin that does not run is a mistake (a misspelt name would leave
  // the real plugin unconfigured without a word): refuse it.
  const unconfigured = Object.keys(config.pluginConfig ?? {}).filter((n) => !plugins.some((p) => p.name === n));
  if (unconfigured.length)
    return err(
      `plugin configuration for ${unconfigured.join(', ')}, which ${unconfigured.length === 1 ? 'is' : 'are'} not among the verifier's plugins (${plugins.map((p) => p.name).join(', ')})`,
    );
  const keyring = Keyring.fromData(config.keyring);
  if (!keyring.ok) return err(keyring.error);
  let manifestInfo: { kernel: string; keyId: string } | undefined;
  let manifest;
  if (config.manifest !== undefined) {
    const m = loadManifest(config.manifest, keyring.value);
    if (!m.ok) return err(`manifest refused: ${m.error}`);
    manifest = m.value;
    manifestInfo = { kernel: m.value.body.kernel, keyId: m.value.keyId };
  }
  const vms = checkVmConfigs(config.vms);
  if (!vms.ok) return err(`VM configuration refused: ${vms.error}`);
  try {
    const verifier = new Verifier({
      keyring: keyring.value,
      plugins,
      vms: vms.value,
      ...(manifest ? { manifest } : {}),
      ...(config.pluginConfig ? { pluginConfig: config.pluginConfig } : {}),
    });
    return ok({ verifier, ...(manifestInfo ? { manifest: manifestInfo } : {}) });
  } catch (e) {
    return err(e instanceof Error ? e.message : String(e));
  }
}
