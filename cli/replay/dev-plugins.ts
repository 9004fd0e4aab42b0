/**
 * The plugins under development of `heki replay --plugin`: loaded and checked as the worker
 * loads `pluginModules` (verifier-vm/verifier-setup.ts), each error naming the module.
 */
import { checkHostFile, MAX_SMALL_INPUT_BYTES } from '../../shared/host-file.ts';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { loadPluginModule } from '../../verifier-vm/verifier-setup.ts';
import type { DevPlugin } from './replay-log.ts';

/**
 * Why a plugin outside this checkout may fail to load, when that is the likely cause: it
 * imports heki-sim by name, which resolves only where heki-sim is installed (or inside the
 * checkout), and its folder must be an ES module package.
 */
function setupHint(path: string): string {
  try {
    createRequire(path).resolve('heki-sim/package.json');
    return '';
  } catch {
    return ` (heki-sim cannot be resolved from ${path}: a plugin outside the heki-sim checkout needs a project with "type": "module" and heki-sim installed, 'npm install --save-dev <heki-sim folder>'; 'heki plugin new' prints the setup)`;
  }
}

/** Loads the plugins under development; the error names the module and the problem. */
export async function loadDevPlugins(paths: readonly string[], cwd: string): Promise<DevPlugin[] | string> {
  const out: DevPlugin[] = [];
  for (const given of paths) {
    const path = resolve(cwd, given);
    // The one bounded reader's check: a regular file of bounded size, or why not (FIFO, device, folder, missing).
    const file = checkHostFile(path, { maxBytes: MAX_SMALL_INPUT_BYTES * 16 });
    if (!file.ok) return `--plugin ${file.error}`;
    let plugins;
    try {
      plugins = await loadPluginModule(path);
    } catch (e) {
      return `--plugin ${path}: cannot load: ${(e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ')}${setupHint(path)}`;
    }
    for (const plugin of plugins) {
      const twice = out.find((p) => p.plugin.name === plugin.name);
      if (twice) return `--plugin ${path}: a plugin named ${plugin.name} is already loaded from ${twice.path}`;
      out.push({ plugin, path });
    }
  }
  return out;
}
