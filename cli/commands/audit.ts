/**
 * `heki audit`: tools for the verifier's hash-chained audit log (hypervisor/audit/audit-log.ts).
 * Sub-command `verify` checks a log file's chain.
 */
import { readHostText } from '../../shared/host-file.ts';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { verifyAuditChain, type AuditHead } from '../../hypervisor/audit/audit-log.ts';

const USAGE = `usage: heki audit verify <log> [--head <seq>:<sha256 hex>]

Checks the hash chain of an audit log (JSON lines). Exit 0 if intact (prints the record
count and the head), 1 naming the first bad line, 2 on bad usage or an unreadable file.

  --head <seq>:<hash>   also require the log to end at this recorded head (detects truncation)
`;

function parseHead(text: string): AuditHead {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(text);
  if (m === null) throw new UsageError(`--head must be <seq>:<64 lowercase hex>, got '${text}'`);
  return { seq: Number(m[1]), hash: m[2]! };
}

/** The `heki audit` command. */
export const auditCommand: CliCommand = {
  name: 'audit',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const [sub, ...rest] = argv;
      if (sub === undefined) throw new UsageError('missing sub-command (verify)');
      if (sub !== 'verify') throw new UsageError(`unknown sub-command '${sub}' (expected verify)`);
      const { values, positionals } = parseFlags(rest, { head: { type: 'string' } }, { min: 1, max: 1, names: '<log>' });
      const head = values.head === undefined ? undefined : parseHead(values.head);
      const path = resolve(io.cwd, positionals[0]!);
      const text = readHostText(path, { refuseNul: false });
      if (!text.ok) {
        io.err(`heki audit: ${text.error}\n`);
        return EXIT_USAGE;
      }
      const v = verifyAuditChain(text.value, head === undefined ? {} : { head });
      if (!v.ok) {
        io.out(`${positionals[0]}: TAMPERED at line ${v.line}: ${v.reason}\n`);
        return EXIT_NEGATIVE;
      }
      io.out(`${positionals[0]}: intact, ${v.records} records (head seq ${v.head.seq} sha256 ${v.head.hash})\n`);
      return EXIT_OK;
    });
  },
};
