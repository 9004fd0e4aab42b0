/**
 * `heki run --record <requests.jsonl>`: every verifier request of the run with the verdict
 * the core got, and the configuration each verifier was started with, as a request log
 * (shared/request-log.ts) that `heki replay` runs again with other plugins.
 *
 * Streaming: each line is written when its event happens (the header at open), so a run's
 * module images and 40,000-item ftrace batches are never all in memory; only the requests
 * still waiting for their verdict are held, already encoded. A request line is written when
 * its verdict arrives, so the file has requests in the order the verifier decided them (see
 * the format's comment), each with its `seq` (the order they were sent).
 *
 * Compressed: the lines go out as gzip members of at most {@link CHUNK_CHARS} characters of
 * text each (a multi-member gzip file, RFC 1952 section 2.2, which `zcat` and `heki replay`
 * read as one stream). The demo's log is dominated by the kernel's text and the ftrace
 * batches: 49.6 MB of JSON, about 11 MB on disk.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { checkOutputFile } from '../../shared/host-output.ts';
import { err, ok, type Result } from '../../shared/result.ts';
import { encodeLogLine, encodeLogValue, logHeader, type RecordedVerifierInit } from '../../shared/request-log.ts';
import type { VmObserver } from '../../hypervisor/observe/vm-observer.ts';
import type { WorkerInit } from '../../shared/worker-api.ts';
import type { RunOutput, RunOutputContext, RunOutputSession } from './run-output.ts';

/** What of a WorkerInit a replay needs: all of it but fault injection (the test harness's, not the policy's). */
function recordedInit(init: WorkerInit): RecordedVerifierInit {
  const { faultInjection: _harness, ...recorded } = init;
  return recorded;
}

/** Text buffered before it is compressed and written: bounds memory, keeps small lines in one member. */
const CHUNK_CHARS = 1 << 20;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One recording. */
class RecordSession implements RunOutputSession {
  readonly observer: VmObserver;
  readonly #path: string;
  #fd: number | undefined;
  #error: string | undefined;
  #requests = 0;
  /** Characters of JSON text written (before compression). */
  #bytes = 0;
  /** Bytes on disk. */
  #written = 0;
  /** Lines not yet compressed. */
  #buffer: string[] = [];
  #buffered = 0;
  /** Requests waiting for their verdict: seq -> the encoded request. */
  readonly #pending = new Map<number, { vm: string; kind: string; json: string }>();

  constructor(path: string, fd: number, ctx: RunOutputContext) {
    this.#path = path;
    this.#fd = fd;
    this.#write(encodeLogLine(logHeader({ scenario: ctx.scenario.name, source: ctx.display })));
    this.observer = {
      verifierStarted: (e) => this.#guard('a verifier start', () => this.#write(encodeLogLine({ type: 'verifier', vm: e.vm, init: recordedInit(e.init) }))),
      verifierRequest: (e) =>
        this.#guard(`request ${e.seq}`, () => {
          // Encoded now: these are the bytes the verifier sees (the core froze the pages), and
          // the core may reuse its buffers once the verdict is in.
          this.#pending.set(e.seq, { vm: e.vm, kind: e.kind, json: encodeLogValue(e.request()) });
        }),
      verdict: (e) =>
        this.#guard(`the verdict on request ${e.seq}`, () => {
          const p = this.#pending.get(e.seq);
          this.#pending.delete(e.seq);
          this.#requestLine(e.seq, e.vm, e.kind, p?.json ?? 'null', encodeLogValue(e.verdict));
        }),
      reset: (e) => this.#guard('a reset', () => this.#write(encodeLogLine({ type: 'reset', vm: e.vm, why: e.why }))),
      cpusOnline: (e) => this.#guard('a CPU hotplug', () => this.#write(encodeLogLine({ type: 'cpus', vm: e.vm, online: e.online }))),
    };
  }

  #requestLine(seq: number, vm: string, kind: string, request: string, verdict: string): void {
    this.#requests++;
    this.#write(`{"type":"request","seq":${seq},"vm":${JSON.stringify(vm)},"kind":${JSON.stringify(kind)},"request":${request},"verdict":${verdict}}`);
  }

  /** Runs `f`; a failure is kept for finish (an observer must not throw). */
  #guard(what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      this.#error ??= `cannot record ${what}: ${message(e)}`;
    }
  }

  #write(line: string): void {
    if (this.#error !== undefined || this.#fd === undefined) return;
    this.#buffer.push(line, '\n');
    this.#buffered += line.length + 1;
    if (this.#buffered >= CHUNK_CHARS) this.#flush();
  }

  /** Compresses the buffered lines into one gzip member and writes it. */
  #flush(): void {
    if (this.#error !== undefined || this.#fd === undefined || this.#buffered === 0) return;
    const text = this.#buffer.join('');
    this.#buffer = [];
    this.#buffered = 0;
    try {
      const member = gzipSync(text);
      this.#bytes += text.length;
      this.#written += writeSync(this.#fd, member);
    } catch (e) {
      this.#error = `cannot write: ${message(e)}`;
    }
  }

  async finish(result: unknown): Promise<Result<string, string>> {
    const fd = this.#fd;
    if (fd === undefined) return err(`--record ${this.#path}: already finished`);
    if (result === undefined) {
      // The machine did not start: no recording, no partial file.
      this.#fd = undefined;
      closeSync(fd);
      rmSync(this.#path, { force: true });
      return ok(`record: nothing recorded`);
    }
    // Requests the run ended without a verdict for: recorded, with a null verdict.
    for (const [seq, p] of [...this.#pending].sort((a, b) => a[0] - b[0])) this.#requestLine(seq, p.vm, p.kind, p.json, 'null');
    const unanswered = this.#pending.size;
    this.#pending.clear();
    this.#write(encodeLogLine({ type: 'end', requests: this.#requests }));
    this.#flush();
    this.#fd = undefined;
    try {
      closeSync(fd);
    } catch (e) {
      this.#error ??= `cannot close: ${message(e)}`;
    }
    if (this.#error !== undefined) return err(`--record ${this.#path}: ${this.#error}`);
    const mb = (n: number): string => (n / 1e6).toFixed(1);
    return ok(
      `record: ${this.#requests.toLocaleString('en-US')} requests${unanswered ? ` (${unanswered} without a verdict)` : ''}, ${mb(this.#bytes)} MB of JSON lines, ${mb(this.#written)} MB gzip-compressed in ${this.#path}`,
    );
  }
}

/** The `--record` output of `heki run`. */
export const recordOutput: RunOutput = {
  flag: 'record',
  file: 'requests.jsonl',
  usage: `  --record <requests.jsonl>
                          write every verifier request with its verdict, and the verifier's
                          configuration, as gzip-compressed JSON lines (a request log;
                          'zcat' shows them) that 'heki replay'
                          runs again with other plugins (docs/plugins.md)
`,
  open(path: string, ctx: RunOutputContext): Result<RunOutputSession, string> {
    const target = checkOutputFile(path);
    if (!target.ok) return err(`cannot write: ${target.error}`);
    let fd: number;
    try {
      fd = openSync(path, 'w');
    } catch (e) {
      return err(`cannot write (${message(e)})`);
    }
    return ok(new RecordSession(path, fd, ctx));
  },
};
