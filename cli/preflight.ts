/**
 * What a command that starts a machine checks before it does: the environment it reads
 * (`HEKI_VERIFIER_TIMEOUT_MS`), and every file it will write (`--audit`, `--record`,
 * `--trace`, `--report`, `--out`). The README promises exit 2 for bad input before anything
 * runs; without this a bad audit path or timeout value was found only after the kernel had
 * been loaded and booted (seconds later, and exit 1).
 */
import { err, ok, type Result } from '../shared/result.ts';
import { checkOutputFlag, distinctOutputs, type NamedOutput } from '../shared/host-output.ts';
import { quoteForMessage } from '../shared/message-text.ts';
import { verifierTimeoutMs } from '../machine/verifier-timeout.ts';
import { AuditLog } from '../hypervisor/audit/audit-log.ts';

/** What one command will write. */
export interface PlannedOutputs {
  /** Plain output files (`--record`, `--trace`, `--report`, `--out`), with their flags. */
  readonly files?: readonly NamedOutput[];
  /** The `--audit` log (absolute), continued when it exists. */
  readonly audit?: string;
}

/** The environment a machine reads is well-formed, or the problem naming the variable. */
export function checkMachineEnvironment(env: NodeJS.ProcessEnv = process.env): Result<void, string> {
  const t = verifierTimeoutMs(undefined, env);
  return t.ok ? ok(undefined) : err(quoteForMessage(t.error, 200));
}

/**
 * Every check a machine-starting command makes before it starts one: the environment, no two
 * outputs on the same file, each output file writable, an existing audit log intact. The error
 * names the flag, the file and the problem.
 */
export function preflight(planned: PlannedOutputs): Result<void, string> {
  const env = checkMachineEnvironment();
  if (!env.ok) return env;
  const all: NamedOutput[] = [...(planned.files ?? []), ...(planned.audit !== undefined ? [{ flag: '--audit', path: planned.audit }] : [])];
  const distinct = distinctOutputs(all);
  if (!distinct.ok) return distinct;
  for (const o of planned.files ?? []) {
    const c = checkOutputFlag(o.flag, o.path);
    if (!c.ok) return c;
  }
  if (planned.audit !== undefined) {
    const a = AuditLog.check(planned.audit);
    if (!a.ok) return err(`--audit ${a.error}`);
  }
  return ok(undefined);
}

/** The line that tells the user where the verdicts of `--audit <path>` went, and how to check them. */
export function auditNotice(path: string): string {
  return `audit: verdicts appended to ${path} (check it with 'heki audit verify ${path}')\n`;
}
