/**
 * Reads and parses a scenario file from the host (through shared/host-file.ts, bounded). Errors are ready to print: an unreadable
 * file names the path and the system's reason; a malformed one lists `file:line: problem`.
 */
import { err, type Result } from '../shared/result.ts';
import { readHostText } from '../shared/host-file.ts';
import { formatParseError, parseScenario } from './parse.ts';
import type { Scenario } from './scenario.ts';

/** Scenario files larger than this are refused (a scenario is a page of YAML, not data). */
export const MAX_SCENARIO_BYTES = 1 << 20;

/**
 * Loads the scenario at absolute `path`; `display` is how messages name it (the path as
 * the user typed it). Never throws.
 */
export function loadScenario(path: string, display: string = path): Result<Scenario, string> {
  // A regular file of at most 1 MiB, valid UTF-8 without NUL bytes (a binary file is refused
  // with the offset of its first bad byte, not parsed as YAML).
  const text = readHostText(path, { maxBytes: MAX_SCENARIO_BYTES, display });
  if (!text.ok) return text;
  const parsed = parseScenario(text.value, { path, display });
  return parsed.ok ? parsed : err(formatParseError(parsed.error));
}
