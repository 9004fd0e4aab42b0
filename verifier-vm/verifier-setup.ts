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
import type { WorkerInit } from './worker-api.ts';
import { checkVmConfigs } from './vm-config.ts';

/**
 * The plugins of a plugin module (its default export: a plugin or an array of them). Throws
 * when the module cannot be imported or its default export is not a verifier plugin.
 */
export async function loadPluginModule(path: string): Promise<AnyPlugin[]> {
  const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  const d = mod.default;
  const list = Array.isArray(d) ? d : [d];
  for (const p of list) {
    const q = p as Partial<AnyPlugin> | undefined;
    if (!q || typeof q.name !== 'string' || !Array.isArray(q.kinds) || typeof q.decide !== 'function') {
      throw new Error(`${path}: default export is not a verifier plugin (name, kinds, decide)`);
    }
  }
  return list as AnyPlugin[];
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
    const verifier = new Verifier({ keyring: keyring.value, plugins, vms: vms.value, ...(manifest ? { manifest } : {}), ...(config.pluginConfig ? { pluginConfig: config.pluginConfig } : {}) });
    return ok({ verifier, ...(manifestInfo ? { manifest: manifestInfo } : {}) });
  } catch (e) {
    return err(e instanceof Error ? e.message : String(e));
  }
}
