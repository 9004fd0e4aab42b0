/**
 * The audit trail of lifecycle events: one `lifecycle` record per reset, kexec, crash,
 * shutdown, hibernation, resume and migration step, in the same hash-chained log as the
 * verdicts (the core's once a verifier is attached).
 */
import type { AuditValue } from '../../../shared/audit-sink.ts';
import type { Vmm } from '../vmm.ts';

/** Appends a lifecycle record (`event: 'lifecycle'`, the VM's name, then `fields`). */
export function auditLifecycle(vmm: Vmm, fields: Readonly<Record<string, AuditValue>>): void {
  vmm.audit.append({ event: 'lifecycle', vm: vmm.identity.vm, ...fields });
}
