/**
 * The benchmark's progress bar, on stderr (stdout carries the table or the JSON object): a
 * bar redrawn in place on a terminal, one line per step otherwise (a log stays readable).
 */

/** Reports progress: `fraction` of the whole run done, now at `label`. */
export type Progress = (fraction: number, label: string) => void;

/** Where the bar goes: a stream, or any writer (redrawn in place only on a terminal). */
export interface ProgressSink {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** A progress bar writing to `stream` (default process.stderr); `done()` ends its line. */
export function progressBar(stream: ProgressSink = process.stderr, width = 30): Progress & { done(): void } {
  const tty = stream.isTTY === true;
  let last = '';
  const f = ((fraction: number, label: string) => {
    const p = Math.max(0, Math.min(1, fraction));
    const filled = Math.round(p * width);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(p * 100)).padStart(3)}% ${label}`;
    if (tty) stream.write(`\r${line.padEnd(last.length)}`);
    else if (label !== last.replace(/^.*% /, '')) stream.write(`${line}\n`);
    last = line;
  }) as Progress & { done(): void };
  f.done = () => {
    if (tty && last) stream.write('\n');
    last = '';
  };
  return f;
}

/** No progress output (tests). */
export const noProgress: Progress = () => undefined;
