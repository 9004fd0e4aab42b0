/**
 * The verifier's no-progress bound when the machine's configuration names none: the link's
 * default (2 s, hypervisor/verifier-link/watchdog.ts), or `HEKI_VERIFIER_TIMEOUT_MS` from the
 * environment. A request in flight on which the verifier reports no progress for that long
 * (a plugin that loops or never settles) is denied as "verifier unavailable"; a busy host
 * slows the verifier's progress without stopping it, so it needs no longer bound. Whatever
 * the bound, one request is cut at the link's absolute ceiling (120 s, or the bound if
 * longer). A bad value is refused, naming the variable, rather than ignored.
 */
import { err, ok, type Result } from '../shared/result.ts';

/** The variable's name. */
export const VERIFIER_TIMEOUT_ENV = 'HEKI_VERIFIER_TIMEOUT_MS';

/** At most ten minutes: a verifier that shows no progress for longer is as good as dead. */
const MAX_MS = 600_000;

/** `configured`, else the environment's value, else undefined (the link's default); or why the environment's is bad. */
export function verifierTimeoutMs(configured: number | undefined, env: NodeJS.ProcessEnv = process.env): Result<number | undefined, string> {
  if (configured !== undefined) return ok(configured);
  const text = env[VERIFIER_TIMEOUT_ENV];
  if (text === undefined || text === '') return ok(undefined);
  const ms = Number(text);
  if (!/^\d+$/.test(text) || !(ms > 0) || ms > MAX_MS) {
    return err(`${VERIFIER_TIMEOUT_ENV} must be a whole number of milliseconds between 1 and ${MAX_MS}, got '${text}'`);
  }
  return ok(ms);
}
