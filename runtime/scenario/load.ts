/**
 * Reads and parses a scenario file from the host. Errors are ready to print: an unreadable
 * file names the path and the system's reason; a malformed one lists `file:line: problem`.
 */
import { readFileSync, statSync } from 'node:fs';
import { err, type Result } from '../../shared/result.ts';
import { formatParseError, parseScenario } from './parse.ts';
import type { Scenario } from './scenario.ts';

/** Scenario files larger than this are refused (a scenario is a page of YAML, not data). */
export const MAX_SCENARIO_BYTES = 1 << 20;

/**
 * Loads the scenario at absolute `path`; `display` is how messages name it (the path as
 * the user typed it). Never throws.
 */
export function loadScenario(path: string, display: string = path): Result<Scenario, string> {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) return err(`${display}: not a file`);
    if (st.size > MAX_SCENARIO_BYTES) return err(`${display}: ${st.size} bytes; a scenario file is at most ${MAX_SCENARIO_BYTES}`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return err(`${display}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
  const parsed = parseScenario(text, { path, display });
  return parsed.ok ? parsed : err(formatParseError(parsed.error));
}
