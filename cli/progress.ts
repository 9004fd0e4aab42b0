/**
 * Progress of long work (the attack catalogue, a restore, the demo's steps) on stderr, so
 * that stdout keeps its contract (one JSON object under --json, the table otherwise).
 *
 * On a terminal (CliIo.errIsTTY) the progress is one status line, redrawn in place (`\r`,
 * then erase to the end of the line, ECMA-48 EL) and erased before each stdout write, so the
 * table and the status never tangle. Elsewhere (a pipe, a CI log, a test) each
 * {@link Progress.step} is one plain line, and {@link Progress.status} writes nothing: a log
 * gets a line per finished unit of work, not a stream of redraws.
 */
import type { CliIo } from './command.ts';

/** A status line on stderr for one command. */
export class Progress {
  readonly #io: CliIo;
  readonly #prefix: string;
  #shown = '';

  /** `prefix` starts every line (`heki attacks`). */
  constructor(io: CliIo, prefix: string) {
    this.#io = io;
    this.#prefix = prefix;
  }

  get #tty(): boolean {
    return this.#io.errIsTTY === true;
  }

  /** A transient status (on a terminal only): what is running now. */
  status(text: string): void {
    if (!this.#tty) return;
    this.#shown = `${this.#prefix}: ${text}`;
    this.#io.err(`\r\x1b[K${this.#shown}`);
  }

  /** A unit of work finished (`12/57 done`): the status line on a terminal, a line elsewhere. */
  step(text: string): void {
    if (this.#tty) this.status(text);
    else this.#io.err(`${this.#prefix}: ${text}\n`);
  }

  /** Writes `text` to stdout with the status line out of the way. */
  out(text: string): void {
    if (this.#shown === '') {
      this.#io.out(text);
      return;
    }
    this.#io.err('\r\x1b[K');
    this.#io.out(text);
    this.#io.err(this.#shown);
  }

  /** Erases the status line (call before the final summary). */
  done(): void {
    if (this.#shown !== '') this.#io.err('\r\x1b[K');
    this.#shown = '';
  }
}
