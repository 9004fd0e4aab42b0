/**
 * The built-in plugins, in the order the verifier runs them. Order matters where plugins
 * publish facts: the signature plugins run before module-end-state.
 */
import type { AnyPlugin } from '../plugin-api.ts';
import { modulePkcs7Plugin, moduleSignaturePlugin } from './module-signature.ts';

/** Every built-in plugin. */
export const BUILTIN_PLUGINS: readonly AnyPlugin[] = [moduleSignaturePlugin as AnyPlugin, modulePkcs7Plugin as AnyPlugin];

/** The built-in plugin with this name. */
export function builtinPlugin(name: string): AnyPlugin | undefined {
  return BUILTIN_PLUGINS.find((p) => p.name === name);
}
