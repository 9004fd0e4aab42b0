/**
 * A manifest built from the real fixture kernel (Debian 6.1 vmlinuz + System.map), for the
 * plugin tests that check every real ftrace site, jump entry and static call (not a test file
 * itself).
 * Section hashes are of the file image as is (not ftrace-normalised): these tests do not use
 * them.
 */
import { createHash } from 'node:crypto';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { indexManifest, type KernelManifest, type ManifestBody } from '../../verifier-vm/manifest.ts';
import { manifestStaticCalls } from '../../tools/manifest-builder.ts';

const h = (a: bigint): string => a.toString(16);

/** The trampolines Linux 6.1's x86 ftrace calls from a site (arch/x86/kernel/ftrace_64.S). */
export const FIXTURE_TRAMPOLINES = ['ftrace_caller', 'ftrace_regs_caller'] as const;

/** Builds the manifest of the fixture kernel. Throws if a trampoline symbol is missing. */
export function fixtureManifest(k: KernelImage): KernelManifest {
  const tramp: Record<string, string> = {};
  for (const n of FIXTURE_TRAMPOLINES) {
    const a = k.systemMap.address(n);
    if (a === undefined) throw new Error(`System.map has no ${n}`);
    tramp[n] = h(a);
  }
  const sections = ['.text', '.init.text'].map((name) => {
    const s = k.sectionByName(name);
    if (!s || s.paddr === undefined) throw new Error(`vmlinux has no loaded ${name}`);
    return { name, vaddr: h(s.vaddr), paddr: h(s.paddr), size: s.size, sha256: createHash('sha256').update(s.bytes).digest('hex') };
  });
  const body: ManifestBody = {
    kernel: 'linux-6.1.0-56-amd64',
    vmlinuzSha256: '00'.repeat(32),
    sections,
    symbols: { _stext: h(k.boundaries._stext), _etext: h(k.boundaries._etext) },
    mcountSites: k.mcountSites.map((s) => h(s.address)),
    jumpEntries: k.jumpEntries.map((e) => ({ site: h(e.site), target: h(e.target), key: h(e.key), len: e.length })),
    exports: Object.fromEntries([...k.exports].map(([n, a]) => [n, h(a)])),
    ftraceTrampolines: tramp,
    fentry: h(k.boundaries.__fentry__),
    staticCalls: manifestStaticCalls(k),
  };
  return indexManifest(body, '0123456789abcdef');
}
