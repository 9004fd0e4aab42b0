/**
 * Where verdict and lifecycle records go: the fields a record may hold and the one method a
 * writer needs. The host's hash-chained audit log (hypervisor/audit/audit-log.ts) is the sink the
 * core, the VMM and an in-process verifier engine append to; the engine names only this
 * interface, so it never depends on the host's log or its files.
 */

/** A JSON value allowed in a record's fields. */
export type AuditValue = string | number | boolean | null | readonly AuditValue[] | { readonly [k: string]: AuditValue };

/** A writer of audit records. */
export interface AuditSink {
  /**
   * Appends one record made of `fields`. Throws when it cannot: a verdict that cannot be
   * audited must not be applied.
   */
  append(fields: Readonly<Record<string, AuditValue>>): unknown;
}
