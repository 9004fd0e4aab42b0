/**
 * Problems found in a scenario file, each with the 1-based line it is on. The parser
 * collects every problem it can find in one pass (instead of stopping at the first), so a
 * user fixes a file in one round; `heki run` prints them as `file:line: message`.
 */
import type { LineCounter, Node } from 'yaml';

/** One problem: where and what. */
export interface ScenarioProblem {
  /** 1-based line number. */
  readonly line: number;
  /** What is wrong, naming the step and the key (`step 3 (write): 'mode' must be kernel or user`). */
  readonly message: string;
}

/** Something that has a source position: a YAML node, or an offset into the text. */
export type Position = Node | number | null | undefined;

/** The collector the parser threads through. */
export class Problems {
  readonly #list: ScenarioProblem[] = [];
  readonly #lines: LineCounter;
  readonly #lastContent: number;

  /** `lines` has counted `text` (yaml's parseDocument filled it). */
  constructor(lines: LineCounter, text: string) {
    this.#lines = lines;
    this.#lastContent = Math.max(0, text.trimEnd().length - 1);
  }

  /**
   * The 1-based line of `at` (line 1 when it has no position). An offset past the last
   * non-blank character (YAML reports "unexpected end" there) counts as that character's
   * line, so the number always points at a line the user can see.
   */
  lineOf(at: Position): number {
    const offset = typeof at === 'number' ? at : at?.range?.[0];
    if (offset === undefined) return 1;
    return Math.max(1, this.#lines.linePos(Math.min(offset, this.#lastContent)).line);
  }

  /** Records `message` at the line of `at`. */
  add(at: Position, message: string): void {
    this.#list.push({ line: this.lineOf(at), message });
  }

  /** How many problems so far. */
  get count(): number {
    return this.#list.length;
  }

  /** Every problem, in line order (stable for problems on the same line). */
  sorted(): readonly ScenarioProblem[] {
    return [...this.#list].sort((a, b) => a.line - b.line);
  }
}
