/**
 * Reading a scenario file for a command (`heki run`, `heki snapshot`): parse it and check the
 * host files it names, printing the problem and giving exit 2 on bad input.
 */
import { resolve } from 'node:path';
import { loadScenario } from '../runtime/scenario/load.ts';
import type { Scenario } from '../runtime/scenario/scenario.ts';
import { checkScenarioFiles } from './commands/run.ts';
import type { CliIo } from './command.ts';
import { quoteForMessage } from '../shared/message-text.ts';

/** The scenario at `display` (relative to io.cwd), or undefined after printing why not. */
export function readScenarioInput(io: CliIo, display: string, command: string): Scenario | undefined {
  const loaded = loadScenario(resolve(io.cwd, display), quoteForMessage(display));
  if (!loaded.ok) {
    io.err(`${loaded.error}\n`);
    return undefined;
  }
  const files = checkScenarioFiles(loaded.value, display);
  if (!files.ok) {
    io.err(`heki ${command}: ${files.error}\n`);
    return undefined;
  }
  return loaded.value;
}
