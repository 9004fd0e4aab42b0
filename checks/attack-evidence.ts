/**
 * What the host recorded while an attack ran, in the words of an attack report: the VM exits
 * and host-side refusals in the VMM's event log, and the refusing records of the audit log
 * (denied or unapplied verdicts, refused DMA, refused host copies).
 */
import { MSR_NAMES } from '../shared/x86/cpu.ts';
import type { AuditRecord } from '../hypervisor/audit/audit-log.ts';
import type { VmmEvent } from '../hypervisor/vmm/event-log.ts';
import type { SimulatedMachine } from '../machine/simulated-machine.ts';

function hexv(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** One event of the VMM's log (a VM exit or a host-side refusal) in a few words. */
export function describeEvent(e: VmmEvent): string {
  if (e.kind === 'dma-refused') return `dma-refused event (${e.device} ${e.direction}, gpa ${hexv(e.gpa)}: ${e.refusal})`;
  if (e.kind === 'host-access-refused') return `host-access-refused event (${e.path} ${e.access}, gpa ${hexv(e.gpa)})`;
  const x = e.exit;
  const how = e.action === 'stop' ? ', VM stopped' : '';
  switch (x.reason) {
    case 'ept-violation':
      return `ept-violation exit (${x.mode} ${x.pageWalk ? `page-walk ${x.access}` : x.access}, gpa ${hexv(x.gpa)}${how})`;
    case 'cr-write':
      return `cr-write exit (CR${x.cr}${how})`;
    case 'msr-write':
    case 'msr-read':
      return `${x.reason} exit (${MSR_NAMES.get(x.msr) ?? hexv(x.msr)}${how})`;
    case 'dt-write':
      return `dt-write exit (${x.table}${how})`;
    case 'heki-configure':
      return `heki-configure exit (${x.request.kind}${how})`;
    case 'heki-denial': {
      const d = x.denial;
      const what =
        d.kind === 'verification'
          ? `verification of ${d.request}`
          : d.kind === 'immutable'
            ? `immutable frame ${hexv(d.frame)}`
            : d.kind === 'cr-pin'
              ? `cr-pin CR${d.cr}`
              : `bad-pin CR${d.cr}`;
      return `heki-denial exit (${what}${how})`;
    }
    default:
      // An exit reason added after this was written: name it rather than guess its fields.
      return `${(x as { readonly reason: string }).reason} exit${how}`;
  }
}

/** True when an audit record says something was refused: a denied or unapplied verdict, a host-side refusal. */
export function isRefusal(r: AuditRecord): boolean {
  return r['event'] === 'verdict' ? r['ok'] === false || r['applied'] === false : r['event'] === 'dma-refused' || r['event'] === 'host-access-refused';
}

/** One refusing audit record in a few words. */
export function describeRefusal(r: AuditRecord): string {
  const reason = String(r['reason']);
  if (r['event'] !== 'verdict') return `audit ${String(r['event'])}: ${reason}`;
  const plugins = Array.isArray(r['plugins']) ? r['plugins'] : [];
  const kind = String(r['kind']);
  if (plugins.includes('core')) return `core refused ${kind}: ${reason}`;
  if (r['failClosed'] === true) return `fail closed on ${kind}: ${reason}`;
  if (r['retryable'] === true) return `refused as busy (${kind}): ${reason}`;
  if (r['ok'] === true) return `${kind} allowed but not applied: ${String(r['note'] ?? reason)}`;
  return `verifier denied ${kind}: ${reason}`;
}

/**
 * The host's side of one attack: `short` names the first event that refused something and the
 * first refusing audit record (what stopped it), `long` counts everything recorded.
 */
export function hostEvidence(m: SimulatedMachine, fromSeq: number, fromAudit: number): { short: string; long: string } {
  const events = m.vmm.log.events().filter((e) => e.seq >= fromSeq);
  const refusals = m.audit.since(fromAudit).filter(isRefusal);
  // The first event that refused something is what stopped the attack; later ones are usually
  // the attack checking its effect (a fetch through an executable alias, a second write).
  const parts: string[] = [];
  const firstRefusing = events.find((e) => e.kind !== 'exit' || e.action !== 'resume');
  if (firstRefusing) parts.push(`${describeEvent(firstRefusing)}${events.length > 1 ? ` (${events.length} events in all)` : ''}`);
  const firstRefusal = refusals[0];
  if (firstRefusal) parts.push(`${describeRefusal(firstRefusal)}${refusals.length > 1 ? ` (${refusals.length} refusals in all)` : ''}`);
  const counts = new Map<string, number>();
  for (const e of events) {
    const k = e.kind === 'exit' ? e.exit.reason : e.kind;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const long = `host recorded ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no exit'} and ${refusals.length} refusing audit record(s)`;
  return { short: parts.join('; '), long };
}
