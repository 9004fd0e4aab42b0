/**
 * Records a host-side refusal twice, as every security-relevant refusal is: an event in the
 * VMM's log (what happened to this VM) and a record in the audit log (the hash-chained
 * trail). The audit log is the core's (`core.auth.audit`) once a verifier is attached, so one
 * trail holds verdicts and refusals in order; before that, the VMM's own.
 */
import { hex } from '../../shared/addr.ts';
import type { AuditLog, AuditRecord } from '../audit/audit-log.ts';
import type { HostRefusal, VmmDmaRefusedEvent, VmmEventLog, VmmHostAccessRefusedEvent } from './event-log.ts';

/** Where refusals go. */
export interface HostRefusalSink {
  /** Logs and audits one refusal; returns both records. */
  record(refusal: HostRefusal): { event: VmmDmaRefusedEvent | VmmHostAccessRefusedEvent; audit: AuditRecord };
}

/** The VMM's sink: its event log, and the audit log the VMM names at the time of the refusal. */
export class HostRefusalRecorder implements HostRefusalSink {
  readonly #log: VmmEventLog;
  readonly #audit: () => { log: AuditLog; vm: string };

  constructor(log: VmmEventLog, audit: () => { log: AuditLog; vm: string }) {
    this.#log = log;
    this.#audit = audit;
  }

  record(refusal: HostRefusal): { event: VmmDmaRefusedEvent | VmmHostAccessRefusedEvent; audit: AuditRecord } {
    const event = this.#log.appendHost(refusal);
    const { log, vm } = this.#audit();
    const common = { vm, gpa: hex(refusal.gpa), len: refusal.len, frame: refusal.frame, reason: refusal.detail };
    const audit =
      refusal.kind === 'dma-refused'
        ? log.append({ event: 'dma-refused', ...common, device: refusal.device, direction: refusal.direction, refusal: refusal.refusal })
        : log.append({ event: 'host-access-refused', ...common, path: refusal.path, access: refusal.access });
    return { event, audit };
  }
}
