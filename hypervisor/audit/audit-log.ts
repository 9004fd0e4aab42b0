/**
 * A hash-chained, append-only audit log of verdicts, in JSON lines.
 *
 * Format: one JSON object per line, each line ended by `\n`:
 * ```
 * {"seq":1,"time":"2025-01-01T00:00:00.000Z","prev":"000…000",...fields}
 * {"seq":2,"time":"…","prev":"<sha256 hex of line 1's text>",...fields}
 * ```
 * `seq` counts from 1 and goes up by one per line; `prev` is the SHA-256 (lowercase hex) of
 * the previous line's exact text without its `\n`, or 64 zeros on the first line; `time` is an
 * ISO 8601 timestamp. So editing, removing, inserting or reordering any line breaks the chain
 * at or right after it. Removing lines at the end cannot be seen from the file alone: compare
 * against a {@link AuditHead} recorded elsewhere (`verifyAuditChain(text, { head })`).
 *
 * INVARIANT: a record is written to the file, synchronously, before `append` returns, so a
 * verdict that was acted on is never lost when the process crashes afterwards.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync, existsSync } from 'node:fs';
import { ok, err, type Result } from '../../shared/result.ts';
import { readHostText } from '../../shared/host-file.ts';
import { checkOutputFile } from '../../shared/host-output.ts';
import type { AuditSink, AuditValue } from '../../shared/audit-sink.ts';

/** The `prev` of the first record. */
export const AUDIT_GENESIS_PREV = '0'.repeat(64);

/** Members every record has; `append` refuses fields with these names. */
export const AUDIT_RESERVED_FIELDS: readonly string[] = Object.freeze(['seq', 'time', 'prev']);

/** One record: the chain members plus the caller's fields. */
export interface AuditRecord {
  readonly seq: number;
  readonly time: string;
  readonly prev: string;
  readonly [field: string]: AuditValue;
}

/** Where the chain ends: the last record's seq and the SHA-256 of its line (seq 0 and zeros when empty). */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/** The result of {@link verifyAuditChain}. `line` is 1-based; `reason` names the problem. */
export type AuditChainVerdict =
  { readonly ok: true; readonly records: number; readonly head: AuditHead } | { readonly ok: false; readonly line: number; readonly reason: string };

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  /** Append every record to this file (created if absent; an existing file must verify and is continued). */
  readonly path?: string;
  /** fsync after every record, to survive power loss, not only a process crash. Default false. */
  readonly fsync?: boolean;
  /** The clock, for tests. Default `() => new Date()`. */
  readonly now?: () => Date;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** An append-only audit log, in memory and optionally in a file. */
export class AuditLog implements AuditSink {
  readonly #records: AuditRecord[] = [];
  readonly #fd: number | undefined;
  readonly #fsync: boolean;
  readonly #now: () => Date;
  #head: AuditHead;
  #closed = false;

  private constructor(fd: number | undefined, head: AuditHead, options: AuditLogOptions) {
    this.#fd = fd;
    this.#head = head;
    this.#fsync = options.fsync ?? false;
    this.#now = options.now ?? (() => new Date());
  }

  /** A log kept in memory only. */
  static inMemory(options: Omit<AuditLogOptions, 'path'> = {}): AuditLog {
    return new AuditLog(undefined, { seq: 0, hash: AUDIT_GENESIS_PREV }, options);
  }

  /**
   * Opens (or creates) the log file at `options.path` and continues its chain. An existing file
   * must pass {@link verifyAuditChain} and end with a newline; otherwise this fails, naming the
   * line, rather than extend a broken chain. `records()` holds only records appended since.
   */
  static open(options: AuditLogOptions & { readonly path: string }): Result<AuditLog, string> {
    const path = options.path;
    const checked = AuditLog.check(path);
    if (!checked.ok) return checked;
    const head = checked.value;
    let fd: number;
    try {
      fd = openSync(path, 'a', 0o600);
    } catch (e) {
      return err(`${path}: cannot open for append (${e instanceof Error ? e.message : String(e)})`);
    }
    return ok(new AuditLog(fd, head, options));
  }

  /**
   * Whether {@link AuditLog.open} can continue the log at `path`, without opening it for
   * writing: the file can be created or appended to (shared/host-output.ts), and an existing
   * one is a regular file whose chain verifies and whose last line is complete. Resolves to
   * the head the next record continues. Commands call it before a machine starts, so a bad
   * `--audit` path is bad input (exit 2), not a failure found after the boot.
   */
  static check(path: string): Result<AuditHead, string> {
    const target = checkOutputFile(path);
    if (!target.ok) return err(`${path}: ${target.error}`);
    if (!target.value.exists || !existsSync(path)) return ok({ seq: 0, hash: AUDIT_GENESIS_PREV });
    const text = readHostText(path, { display: path });
    if (!text.ok) return text;
    const v = verifyAuditChain(text.value);
    if (!v.ok) return err(`${path}: line ${v.line}: ${v.reason}`);
    if (text.value.length > 0 && !text.value.endsWith('\n')) return err(`${path}: the last line is not terminated (torn write?)`);
    return ok(v.head);
  }

  /**
   * Appends one record built from `fields` and returns it. Throws (a caller bug, not input)
   * if `fields` uses a reserved name or the log is closed; file errors propagate, because a
   * verdict that cannot be audited must not be applied.
   */
  append(fields: Readonly<Record<string, AuditValue>>): AuditRecord {
    if (this.#closed) throw new Error('audit log is closed');
    for (const k of AUDIT_RESERVED_FIELDS) {
      if (Object.hasOwn(fields, k)) throw new TypeError(`audit field name "${k}" is reserved`);
    }
    const record: AuditRecord = { seq: this.#head.seq + 1, time: this.#now().toISOString(), prev: this.#head.hash, ...fields };
    const line = JSON.stringify(record);
    if (this.#fd !== undefined) {
      const buf = Buffer.from(line + '\n', 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
      if (this.#fsync) fsyncSync(this.#fd);
    }
    this.#head = { seq: record.seq, hash: sha256Hex(line) };
    const frozen = Object.freeze(JSON.parse(line) as AuditRecord);
    this.#records.push(frozen);
    return frozen;
  }

  /** The last record's seq and line hash: publish it elsewhere to detect truncation later. */
  head(): AuditHead {
    return this.#head;
  }

  /** The records appended through this object, oldest first (a copy of the list). */
  records(): AuditRecord[] {
    return [...this.#records];
  }

  /** How many records were appended through this object. */
  get count(): number {
    return this.#records.length;
  }

  /** The records appended through this object after the first `n` (a mark from {@link count}). */
  since(n: number): AuditRecord[] {
    return this.#records.slice(n);
  }

  /** Closes the file. Further appends throw. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== undefined) closeSync(this.#fd);
  }
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Checks a whole log text. Names the first bad line (1-based): not JSON, not an object,
 * seq not the next number, a bad time, or prev not the hash of the line before (a line was
 * edited, removed, inserted or reordered). A final newline is expected but not required.
 * With `head`, also checks that the log ends exactly there (catches truncation). Never throws.
 */
export function verifyAuditChain(text: string, options: { readonly head?: AuditHead } = {}): AuditChainVerdict {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let prev = AUDIT_GENESIS_PREV;
  for (const [i, line] of lines.entries()) {
    const n = i + 1;
    if (line === '') return { ok: false, line: n, reason: 'empty line' };
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      return { ok: false, line: n, reason: 'not valid JSON' };
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return { ok: false, line: n, reason: 'not a JSON object' };
    const r = rec as Record<string, unknown>;
    if (r['seq'] !== n) {
      return { ok: false, line: n, reason: `seq is ${JSON.stringify(r['seq'])}, expected ${n} (line removed, inserted or reordered?)` };
    }
    if (typeof r['time'] !== 'string' || !ISO_TIME.test(r['time']) || Number.isNaN(Date.parse(r['time']))) {
      return { ok: false, line: n, reason: `time ${JSON.stringify(r['time'])} is not an ISO 8601 timestamp` };
    }
    if (r['prev'] !== prev) {
      return {
        ok: false,
        line: n,
        reason:
          n === 1 ? 'prev of the first record is not 64 zeros' : `prev does not match the hash of line ${n - 1} (a line was edited, removed or reordered)`,
      };
    }
    prev = sha256Hex(line);
  }
  const head: AuditHead = { seq: lines.length, hash: prev };
  if (options.head !== undefined && (options.head.seq !== head.seq || options.head.hash !== head.hash)) {
    if (head.seq < options.head.seq) {
      return { ok: false, line: head.seq + 1, reason: `log ends at seq ${head.seq} but the recorded head is seq ${options.head.seq} (truncated)` };
    }
    return {
      ok: false,
      line: Math.min(options.head.seq, head.seq) || 1,
      reason: `log does not match the recorded head seq ${options.head.seq} hash ${options.head.hash}`,
    };
  }
  return { ok: true, records: lines.length, head };
}
