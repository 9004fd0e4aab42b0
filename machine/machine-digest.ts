/**
 * SHA-256 digests of the parts of a machine's state a fork must reproduce (docs/fork.md):
 * guest memory, the EPT, the vCPUs' registers, the core's protections (pins, MSR and CR
 * filters, Heki exit masks, shared frames), the authenticator's records, the verifier's
 * per-VM state, the VMM's own state, and the guest kernel's bookkeeping. Two machines in the
 * same state have the same digests; a test compares a fork with its parent and with a cold
 * boot of the same configuration.
 */
import { createHash } from 'node:crypto';
import { saveGuestKernel } from '../guest/kernel/guest-state.ts';
import type { SimulatedMachine } from './simulated-machine.ts';
import { gfnToGpa } from '../shared/addr.ts';

/** One digest (hex SHA-256) per part; see the file comment. */
export interface MachineDigest {
  readonly memory: string;
  readonly ept: string;
  readonly vcpus: string;
  readonly protections: string;
  readonly authenticator: string;
  readonly verifier: string;
  readonly vmm: string;
  readonly guest: string;
}

/**
 * A deterministic text of plain data: maps and sets in sorted order, bigints and byte
 * arrays tagged, object keys sorted, so equal data gives equal text however it was built.
 */
export function stableText(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (v === undefined) return 'undefined';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (v instanceof Map)
    return `map{${[...v]
      .map(([k, x]) => `${stableText(k)}=>${stableText(x)}`)
      .sort()
      .join(',')}}`;
  if (v instanceof Set) return `set{${[...v].map(stableText).sort().join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(stableText).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableText(o[k])}`)
    .join(',')}}`;
}

const sha = (text: string | Uint8Array): string => createHash('sha256').update(text).digest('hex');

/** The digests of `m`, which must be idle (between steps) with its verifier attached. */
export async function machineDigest(m: SimulatedMachine): Promise<MachineDigest> {
  const core = m.vmm.core;
  const saved = core.saveState({ ept: false });
  if (!saved.ok) throw new Error(`cannot digest the machine: ${saved.error.message}`);
  const { vcpus, auth, ept: _ept, ...protections } = saved.value;
  const mem = createHash('sha256');
  const frame = new Uint8Array(4);
  for (const f of core.memory.residentFrames()) {
    const page = core.memory.read(gfnToGpa(f), 4096);
    // A resident page of zeros reads like an absent one: only contents count.
    if (page.every((b) => b === 0)) continue;
    new DataView(frame.buffer).setUint32(0, f, true);
    mem.update(frame).update(page);
  }
  const vmm = m.vmm;
  const staged = (['kexec', 'crash'] as const).map((s) => vmm.staged(s));
  return {
    memory: mem.digest('hex'),
    ept: sha(stableText(core.ept.entries())),
    vcpus: sha(stableText(vcpus)),
    protections: sha(stableText(protections)),
    authenticator: sha(stableText(auth)),
    verifier: sha(stableText(await m.link.exportVm(vmm.identity.vm))),
    vmm: sha(
      stableText({
        online: vmm.onlineCpus,
        platformPinned: vmm.platformPinned,
        staged,
        disk: vmm.devices.disk.exportSectors(),
        cpu: vmm.cpuModel,
        settings: vmm.settings,
      }),
    ),
    guest: sha(stableText(m.kernel ? saveGuestKernel(m.kernel) : undefined)),
  };
}
