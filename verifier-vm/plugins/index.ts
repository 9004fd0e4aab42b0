/**
 * The built-in plugins, in the order the verifier runs them. Order matters where plugins
 * publish facts: the signature plugins run before module-end-state.
 */
import type { AnyPlugin } from '../plugin-api.ts';
import { modulePkcs7Plugin, moduleSignaturePlugin } from './module-signature.ts';
import { moduleEndStatePlugin } from './module-end-state.ts';
import { codeLoadPlugin } from './code-load.ts';
import { ftracePlugin } from './ftrace.ts';
import { jumpLabelPlugin } from './jump-label.ts';
import { kernelTextPlugin } from './kernel-text.ts';
import { kprobePlugin } from './kprobe.ts';
import { smpLockPlugin } from './smp-lock.ts';
import { setMemoryPlugin } from './set-memory.ts';
import { staticCallPlugin } from './static-call.ts';
import { lifecyclePlugin } from './lifecycle.ts';

/** Every built-in plugin. */
export const BUILTIN_PLUGINS: readonly AnyPlugin[] = [
  moduleSignaturePlugin as AnyPlugin,
  modulePkcs7Plugin as AnyPlugin,
  moduleEndStatePlugin as AnyPlugin,
  kernelTextPlugin as AnyPlugin,
  ftracePlugin as AnyPlugin,
  jumpLabelPlugin as AnyPlugin,
  staticCallPlugin as AnyPlugin,
  kprobePlugin as AnyPlugin,
  smpLockPlugin as AnyPlugin,
  setMemoryPlugin as AnyPlugin,
  codeLoadPlugin as AnyPlugin,
  lifecyclePlugin as AnyPlugin,
];

/** The built-in plugin with this name. */
export function builtinPlugin(name: string): AnyPlugin | undefined {
  return BUILTIN_PLUGINS.find((p) => p.name === name);
}
