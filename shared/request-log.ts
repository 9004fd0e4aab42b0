/**
 * The request log: what `heki run --record <file>` writes (cli/run-outputs/record.ts) and
 * `heki replay <file>` reads (cli/commands/replay.ts). JSON lines, one event per line:
 *
 * ```
 * {"format":"heki-request-log","version":1,"protocol":1,"created":"...","scenario":"demo","source":"scenarios/demo.yaml"}
 * {"type":"verifier","vm":"vm0","init":{"keyring":{...},"manifest":"...","pluginConfig":{...}}}
 * {"type":"request","seq":0,"vm":"vm0","kind":"kernel-text","request":{...},"verdict":{...}}
 * {"type":"reset","vm":"vm0","why":"reboot"}
 * {"type":"cpus","vm":"vm0","online":2}
 * {"type":"end","requests":12}
 * ```
 *
 * The file is written gzip-compressed (a multi-member gzip stream of these lines; see
 * cli/run-outputs/record.ts); a plain-text log, as earlier versions wrote, reads the same.
 *
 * - The header comes first; a reader refuses another format or version, naming line 1.
 * - A `verifier` line is the configuration the VMM started a verifier with (the keyring's
 *   public keys, the signed manifest text, the plugins, plugin modules and configuration):
 *   replay builds a fresh verifier from it.
 * - A `request` line holds a request (without the link's `v` and `id`) and the verdict the
 *   core got for it. Lines are in the order the verdicts arrived, which is the order the
 *   verifier decided the requests (it is one thread), not the order they were sent (`seq`):
 *   with several vCPUs a verdict may come after later requests were sent, and replay must
 *   see a module load before the patches of its sites, as the verifier did. `request` is
 *   null when the core's link answered without the request reaching a verifier; `verdict`
 *   is null when the run ended before the verdict came.
 * - A `reset` line: the VMM reset the VM; the verifier forgot its state.
 * - A `cpus` line: the VMM brought a CPU online (CPU hotplug) and told the verifier the new
 *   count over its control plane; replay tells the rebuilt verifier the same.
 * - The `end` line closes a complete recording; a file without one was cut short.
 *
 * Values JSON has no form for are tagged objects with one key: a bigint is
 * `{"$bigint":"0xffffffff81000000"}` (a `-` in front when negative), bytes are
 * `{"$hex":"0f1f440000"}` (64 bytes or fewer) or `{"$base64":"..."}` (longer: module images,
 * kernel text). A plain object of exactly one such key is always read as the tagged value.
 *
 * TRUST: a log file is input. {@link RequestLogReader} validates every line (JSON, the
 * line's shape, the request with the protocol's own validator, the verdict likewise) and
 * names the line and the problem; nothing in a log is trusted because it was written by us.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { checkHostFile } from './host-file.ts';
import { createInterface } from 'node:readline';
import { PROTOCOL_VERSION, validateRequest, validateVerdict, type RequestBody, type Verdict, type VerifyRequest } from './protocol.ts';
import type { WorkerInit } from './worker-api.ts';

/** The `format` of the header line. */
export const REQUEST_LOG_FORMAT = 'heki-request-log';
/** The version this code writes and reads. */
export const REQUEST_LOG_VERSION = 1;
/** Byte arrays up to this length are written as hex, longer ones as base64. */
export const HEX_BYTES_MAX = 64;

/** A request as the core sends it, without the link's version and id. */
export type RecordedRequest = RequestBody;

/**
 * The configuration a verifier was started with: the {@link WorkerInit} the VMM gave it,
 * without `faultInjection` (the test harness's, not the policy's). As read from a log,
 * `keyring` and `vms` are unchecked data: the verifier's own keyring and VM-configuration
 * loaders check them on replay, so they are typed as what the reader guarantees (objects).
 */
export type RecordedVerifierInit = Omit<WorkerInit, 'faultInjection' | 'keyring' | 'vms'> & {
  readonly keyring: unknown;
  readonly vms?: Readonly<Record<string, unknown>>;
};

/** Line 1. */
export interface LogHeader {
  readonly format: typeof REQUEST_LOG_FORMAT;
  readonly version: number;
  /** The verifier protocol version of the requests (shared/protocol.ts). */
  readonly protocol: number;
  /** ISO time the recording started. */
  readonly created: string;
  /** The scenario's name, and its file as the user named it. */
  readonly scenario?: string;
  readonly source?: string;
}

/** A verifier started with `init` for `vm`. */
export interface LogVerifier {
  readonly type: 'verifier';
  readonly vm: string;
  readonly init: RecordedVerifierInit;
}

/** A request and its verdict. */
export interface LogRequest {
  readonly type: 'request';
  /** The order the core sent it in (0, 1, 2, ...). */
  readonly seq: number;
  readonly vm: string;
  readonly kind: VerifyRequest['kind'];
  readonly request: RecordedRequest | null;
  readonly verdict: Verdict | null;
}

/** The VMM reset `vm`. */
export interface LogReset {
  readonly type: 'reset';
  readonly vm: string;
  readonly why: string;
}

/** The VMM told the verifier that `online` CPUs of `vm` are online. */
export interface LogCpus {
  readonly type: 'cpus';
  readonly vm: string;
  readonly online: number;
}

/** The last line of a complete recording. */
export interface LogEnd {
  readonly type: 'end';
  /** Request lines written. */
  readonly requests: number;
}

/** A line after the header. */
export type LogEntry = LogVerifier | LogRequest | LogReset | LogCpus | LogEnd;

const TAG_BIGINT = '$bigint';
const TAG_HEX = '$hex';
const TAG_BASE64 = '$base64';

const HEX_DIGITS = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function bytesToHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX_DIGITS[b[i] as number];
  return s;
}

/** JSON.stringify's replacer: tags bigints and byte arrays (Buffers too: `this[key]` is the value before toJSON). */
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (typeof raw === 'bigint') return { [TAG_BIGINT]: raw < 0n ? `-0x${(-raw).toString(16)}` : `0x${raw.toString(16)}` };
  if (raw instanceof Uint8Array) {
    return raw.length <= HEX_BYTES_MAX
      ? { [TAG_HEX]: bytesToHex(raw) }
      : { [TAG_BASE64]: Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('base64') };
  }
  return value;
}

/** One line of the log (without the newline): `entry` as JSON, bigints and bytes tagged. */
export function encodeLogLine(entry: LogHeader | LogEntry | Record<string, unknown>): string {
  return JSON.stringify(entry, replacer);
}

/** A value as it will appear inside a log line (for writers that assemble lines from parts). */
export function encodeLogValue(value: unknown): string {
  return JSON.stringify(value, replacer) ?? 'null';
}

/** A new header. */
export function logHeader(info: { scenario?: string; source?: string; created?: Date } = {}): LogHeader {
  return {
    format: REQUEST_LOG_FORMAT,
    version: REQUEST_LOG_VERSION,
    protocol: PROTOCOL_VERSION,
    created: (info.created ?? new Date()).toISOString(),
    ...(info.scenario !== undefined ? { scenario: info.scenario } : {}),
    ...(info.source !== undefined ? { source: info.source } : {}),
  };
}

// Plain character classes, no repeated groups: a group repeated millions of times (a module
// image) overflows the regexp engine's stack.
const HEX_RE = /^[0-9a-f]*$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const BIGINT_RE = /^-?0x[0-9a-f]+$/;

/** The value of a one-key tagged object, or `o` itself; `bad` hears of a malformed tag. */
function untag(o: Record<string, unknown>, bad: (m: string) => void): unknown {
  let tag: string | undefined;
  let n = 0;
  for (const k in o) {
    if (++n > 1) return undefined;
    tag = k;
  }
  if (tag === undefined || tag.charCodeAt(0) !== 36 /* $ */) return undefined;
  const s = o[tag];
  const shown = (): string => JSON.stringify(s)?.slice(0, 40) ?? String(s);
  if (tag === TAG_BIGINT) {
    if (typeof s === 'string' && BIGINT_RE.test(s)) return s.startsWith('-') ? -BigInt(s.slice(1)) : BigInt(s);
    bad(`${TAG_BIGINT} must be a string of "0x" and lowercase hex digits, got ${shown()}`);
  } else if (tag === TAG_HEX) {
    if (typeof s === 'string' && s.length % 2 === 0 && HEX_RE.test(s)) {
      const b = new Uint8Array(s.length >>> 1);
      for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(i * 2, 2), 16);
      return b;
    }
    bad(`${TAG_HEX} must be a string of lowercase hex digit pairs, got ${shown()}`);
  } else if (tag === TAG_BASE64) {
    if (typeof s === 'string' && s.length % 4 === 0 && BASE64_RE.test(s)) {
      const buf = Buffer.from(s, 'base64');
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.length).slice();
    }
    bad(`${TAG_BASE64} must be a base64 string, got ${shown()}`);
  }
  return undefined;
}

/** Replaces tagged objects inside `v` by their values, in place (faster than a JSON.parse reviver). */
function untagAll(v: unknown, bad: (m: string) => void): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x === 'object' && x !== null) v[i] = untagAll(x, bad);
    }
    return v;
  }
  const o = v as Record<string, unknown>;
  const t = untag(o, bad);
  if (t !== undefined) return t;
  for (const k in o) {
    const x = o[k];
    if (typeof x === 'object' && x !== null) o[k] = untagAll(x, bad);
  }
  return o;
}

/** Parses one JSON line, untagging values; the error names the problem (not the line). */
function parseTagged(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  let problem: string | undefined;
  const value = untagAll(raw, (m) => void (problem ??= m));
  return problem ? { ok: false, error: problem } : { ok: true, value };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkInit(init: unknown): string | undefined {
  if (!isObj(init)) return 'init must be an object';
  if (!isObj(init.keyring)) return 'init.keyring must be an object';
  if (init.manifest !== undefined && typeof init.manifest !== 'string') return 'init.manifest must be a string';
  if (init.plugins !== undefined && !isStrArray(init.plugins)) return 'init.plugins must be an array of strings';
  if (init.pluginModules !== undefined && !isStrArray(init.pluginModules)) return 'init.pluginModules must be an array of strings';
  if (init.pluginConfig !== undefined) {
    if (!isObj(init.pluginConfig)) return 'init.pluginConfig must be an object';
    for (const [k, v] of Object.entries(init.pluginConfig)) if (!isObj(v)) return `init.pluginConfig.${k} must be an object`;
  }
  if (init.vms !== undefined && !isObj(init.vms)) return 'init.vms must be an object';
  return undefined;
}

function checkHeader(v: unknown): string | undefined {
  if (!isObj(v) || v.format !== REQUEST_LOG_FORMAT) {
    return `not a heki request log: the first line must be the header {"format":"${REQUEST_LOG_FORMAT}","version":${REQUEST_LOG_VERSION},...}`;
  }
  if (v.version !== REQUEST_LOG_VERSION)
    return `request log version ${JSON.stringify(v.version)} is not supported (this heki reads version ${REQUEST_LOG_VERSION})`;
  if (v.protocol !== PROTOCOL_VERSION) return `the requests are of verifier protocol ${JSON.stringify(v.protocol)}, this heki speaks ${PROTOCOL_VERSION}`;
  if (typeof v.created !== 'string') return 'header.created must be a string';
  for (const k of ['scenario', 'source'] as const) if (v[k] !== undefined && typeof v[k] !== 'string') return `header.${k} must be a string`;
  return undefined;
}

function checkEntry(v: unknown): { ok: true; entry: LogEntry } | { ok: false; error: string } {
  const bad = (error: string): { ok: false; error: string } => ({ ok: false, error });
  if (!isObj(v)) return bad('a line must be a JSON object');
  switch (v.type) {
    case 'verifier': {
      if (typeof v.vm !== 'string') return bad('verifier.vm must be a string');
      const e = checkInit(v.init);
      return e ? bad(e) : { ok: true, entry: v as unknown as LogVerifier };
    }
    case 'request': {
      if (!isCount(v.seq)) return bad('request.seq must be a non-negative integer');
      if (typeof v.vm !== 'string') return bad('request.vm must be a string');
      if (typeof v.kind !== 'string') return bad('request.kind must be a string');
      if (v.request !== null) {
        if (!isObj(v.request)) return bad('request.request must be an object or null');
        if ('v' in v.request || 'id' in v.request) return bad('request.request must not carry v or id (the replay numbers requests itself)');
        const r = validateRequest({ ...v.request, v: PROTOCOL_VERSION, id: v.seq });
        if (!r.ok) return bad(r.error);
        if (r.request.kind !== v.kind) return bad(`request.kind is ${v.kind} but the request is a ${r.request.kind}`);
        if (r.request.vm !== v.vm) return bad(`request.vm is ${v.vm} but the request's vm is ${r.request.vm}`);
      }
      if (v.verdict !== null) {
        const d = validateVerdict(v.verdict);
        if (!d.ok) return bad(d.error);
      }
      if (v.request === null && v.verdict === null) return bad('request and verdict are both null');
      return { ok: true, entry: v as unknown as LogRequest };
    }
    case 'reset':
      if (typeof v.vm !== 'string') return bad('reset.vm must be a string');
      if (typeof v.why !== 'string') return bad('reset.why must be a string');
      return { ok: true, entry: v as unknown as LogReset };
    case 'cpus':
      if (typeof v.vm !== 'string') return bad('cpus.vm must be a string');
      if (!isCount(v.online) || v.online < 1) return bad('cpus.online must be a positive integer');
      return { ok: true, entry: v as unknown as LogCpus };
    case 'end':
      if (!isCount(v.requests)) return bad('end.requests must be a non-negative integer');
      return { ok: true, entry: v as unknown as LogEnd };
    default:
      return bad(`unknown line type ${JSON.stringify(v.type)?.slice(0, 40)} (expected verifier, request, reset, cpus or end)`);
  }
}

/** A problem with a log, at a line (1-based; 0 for the file as a whole). */
export interface LogError {
  readonly line: number;
  readonly message: string;
}

/** Formats a {@link LogError} as `file:line: message`. */
export function formatLogError(file: string, e: LogError): string {
  return e.line > 0 ? `${file}:${e.line}: ${e.message}` : `${file}: ${e.message}`;
}

/**
 * Validates a log line by line: feed every line in order to {@link RequestLogReader.line},
 * then call {@link RequestLogReader.finish}. Each answer names the line of a problem.
 */
export class RequestLogReader {
  #line = 0;
  #header: LogHeader | undefined;
  #ended = false;
  #requests = 0;
  /** The line of each request's `seq`: the core numbers requests uniquely across a whole run (hypervisor/observe/observed-port.ts). */
  readonly #seqLines = new Map<number, number>();

  /** The header, once line 1 was read. */
  get header(): LogHeader | undefined {
    return this.#header;
  }

  /** True once the `end` line was read. */
  get complete(): boolean {
    return this.#ended;
  }

  /**
   * The entry on the next line; `undefined` for the header line (see {@link header}).
   * After an error the reader should not be fed further.
   */
  line(text: string): { ok: true; entry: LogEntry | undefined; line: number } | { ok: false; error: LogError } {
    const n = ++this.#line;
    const fail = (message: string): { ok: false; error: LogError } => ({ ok: false, error: { line: n, message } });
    if (text.trim() === '') return fail('empty line');
    const parsed = parseTagged(text);
    if (!parsed.ok) return fail(parsed.error);
    if (this.#header === undefined) {
      const e = checkHeader(parsed.value);
      if (e) return fail(e);
      this.#header = parsed.value as LogHeader;
      return { ok: true, entry: undefined, line: n };
    }
    if (this.#ended) return fail('a line after the end line');
    const c = checkEntry(parsed.value);
    if (!c.ok) return fail(c.error);
    if (c.entry.type === 'end') {
      if (c.entry.requests !== this.#requests) return fail(`the end line counts ${c.entry.requests} requests, the file has ${this.#requests}`);
      this.#ended = true;
    } else if (c.entry.type === 'request') {
      // Two requests with one number: a spliced or edited log, not a verdict to compare.
      const first = this.#seqLines.get(c.entry.seq);
      if (first !== undefined) return fail(`request seq ${c.entry.seq} appears twice (first on line ${first}): a malformed log`);
      this.#seqLines.set(c.entry.seq, n);
      this.#requests++;
    }
    return { ok: true, entry: c.entry, line: n };
  }

  /** After the last line: an error when the file had no header at all. */
  finish(): LogError | undefined {
    if (this.#header === undefined) return { line: 0, message: 'the file is empty: no header line' };
    return undefined;
  }
}

/** The most a compressed log may decompress to (the demo's is 50 MB). */
export const MAX_INFLATED_BYTES = 4 * 1024 ** 3;

/** True when the file at `path` begins with the gzip magic bytes. */
function startsWithGzipMagic(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false; // the stream's open reports the problem
  }
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** One step of {@link readRequestLog}. */
export type LogRead = { ok: true; line: number; entry: LogEntry } | { ok: false; error: LogError };

/**
 * Streams the log at `path`: every entry after the header, with its line number, in order;
 * the first problem ends the stream as `{ ok: false }` (an unreadable file is line 0).
 * `onHeader` gets the header as soon as line 1 was read. A complete recording's last entry
 * is its `end` line.
 */
export async function* readRequestLog(path: string, onHeader?: (h: LogHeader) => void): AsyncGenerator<LogRead, void> {
  const reader = new RequestLogReader();
  // A regular file, checked before the stream opens: a FIFO or /dev/zero would be read forever.
  const file = checkHostFile(path, { display: '' });
  if (!file.ok) {
    yield { ok: false, error: { line: 0, message: file.error } };
    return;
  }
  // Logs from `heki run --record` are gzip (multi-member); older ones are plain text. The
  // container is told by the gzip magic (RFC 1952: 1f 8b); the lines are the same either way.
  const raw = createReadStream(path);
  let input: Readable = raw;
  if (startsWithGzipMagic(path)) {
    const gunzip = createGunzip();
    raw.on('error', (e) => gunzip.destroy(e));
    // A small file may inflate without end (a gzip bomb): bound what it may decompress to.
    let inflated = 0;
    gunzip.on('data', (chunk: Buffer | string) => {
      inflated += chunk.length;
      if (inflated > MAX_INFLATED_BYTES) gunzip.destroy(new Error(`it decompresses to more than ${MAX_INFLATED_BYTES} bytes`));
    });
    input = raw.pipe(gunzip);
  }
  input.setEncoding('utf8');
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const text of lines) {
      const r = reader.line(text);
      if (!r.ok) {
        yield r;
        return;
      }
      if (r.entry === undefined) onHeader?.(reader.header!);
      else yield { ok: true, line: r.line, entry: r.entry };
    }
  } catch (e) {
    yield { ok: false, error: { line: 0, message: `cannot read: ${e instanceof Error ? e.message : String(e)}` } };
    return;
  } finally {
    lines.close();
    input.destroy();
    raw.destroy();
  }
  const e = reader.finish();
  if (e) yield { ok: false, error: e };
}
