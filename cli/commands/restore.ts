/**
 * `heki restore`: checks a migration snapshot (`heki snapshot`) against the source VMM's key
 * the operator trusts and restores it into a fresh VM: a new VMM and a new verifier, which
 * check it again and re-apply every protection before the guest runs (docs/lifecycle.md).
 * With `--attacks`, runs the attack catalogue against the restored VM (each attack on its own
 * fresh restore), to show it enforces what the source did.
 */
import { checkHostFile, readHostFile } from '../../shared/host-file.ts';
import { auditNotice, preflight } from '../preflight.ts';
import { Progress } from '../progress.ts';
import { quoteForMessage } from '../../shared/message-text.ts';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { err, ok } from '../../shared/result.ts';
import { loadPublicKeyFile } from '../../tools/key-files.ts';

const USAGE = `usage: heki restore <snapshot> --trust <vmm.pub.json> [--attacks [NAME...]] [--json]
                    [--vmlinuz <file> --system-map <file>] [--audit <log>]

Checks the snapshot against the source VMM's public key (role vmm) and restores it into a
fresh VM: the destination VMM refuses a snapshot that another key signed or that was changed
(a byte of it), naming the check; the new verifier checks it again before it takes its state
back; the VMM re-applies memory and every protection before the guest runs. Prints what was
restored.

  --trust <file>     the source VMM's public key file ('heki snapshot' writes <snapshot>.pub.json)
  --attacks [NAME]   then run the attack catalogue (or the named attacks), each on a fresh
                     restore of the snapshot; every attack must be stopped. The attack that
                     needs a protected-memory VM is left out: such a VM cannot be snapshotted
  --vmlinuz, --system-map   the kernel the snapshot's guest runs (default: the fixtures')
  --audit <log>      continue this audit log (the restore's records); default: memory only
  --json             one JSON object: {"restored": {...} | null, "error"?, "attacks"?}

Exit 0 when restored (and, with --attacks, every attack stopped), 1 when the snapshot is
refused (a check failed) or an attack was not stopped, 2 on bad usage, an unreadable file, or
a file that is not a snapshot of this format (another format version, a section that does not
match its schema: the field is named).
`;

/** Makes the command. */
export function createRestoreCommand(): CliCommand {
  return {
    name: 'restore',
    usage: USAGE,
    run(argv: string[], io: CliIo): Promise<number> {
      return withUsage(USAGE, io, argv, async () => {
        const { values, positionals } = parseFlags(
          argv,
          {
            trust: { type: 'string' },
            attacks: { type: 'boolean', default: false },
            json: { type: 'boolean', default: false },
            vmlinuz: { type: 'string' },
            'system-map': { type: 'string' },
            audit: { type: 'string' },
          },
          { min: 1, max: Number.MAX_SAFE_INTEGER, names: '<snapshot>' },
        );
        if (values.trust === undefined) throw new UsageError("--trust <vmm.pub.json> is required: the source VMM's public key");
        if (positionals.length > 1 && !values.attacks) throw new UsageError(`unexpected argument '${positionals[1]}' (attack names follow --attacks)`);
        if ((values.vmlinuz === undefined) !== (values['system-map'] === undefined)) throw new UsageError('--vmlinuz and --system-map go together');
        const file = positionals[0]!;
        const read = readHostFile(resolve(io.cwd, file), { display: quoteForMessage(file) });
        if (!read.ok) {
          io.err(`heki restore: ${read.error}\n`);
          return EXIT_USAGE;
        }
        const bytes = read.value;
        const key = loadPublicKeyFile(resolve(io.cwd, values.trust));
        if (!key.ok) {
          io.err(`heki restore: ${key.error}\n`);
          return EXIT_USAGE;
        }
        if (key.value.role !== 'vmm') {
          io.err(`heki restore: ${values.trust}: key ${key.value.keyId} has role ${key.value.role}; snapshots are signed by vmm keys\n`);
          return EXIT_USAGE;
        }
        const auditPath = values.audit !== undefined ? resolve(io.cwd, values.audit) : undefined;
        const planned = preflight(auditPath !== undefined ? { audit: auditPath } : {});
        if (!planned.ok) {
          io.err(`heki restore: ${planned.error}\n`);
          return EXIT_USAGE;
        }
        for (const [flag, given] of [
          ['--vmlinuz', values.vmlinuz],
          ['--system-map', values['system-map']],
        ] as const) {
          if (given === undefined) continue;
          const f = checkHostFile(resolve(io.cwd, given), { display: `${flag} ${quoteForMessage(given)}` });
          if (!f.ok) {
            io.err(`heki restore: ${f.error}\n`);
            return EXIT_USAGE;
          }
        }
        if (!values.json)
          io.err(`heki restore: checking ${quoteForMessage(file)} (${bytes.length.toLocaleString('en-US')} bytes) and loading its kernel into a fresh VM...\n`);
        const machineMod = await import('../../machine/machine.ts');
        const kernelFiles = values.vmlinuz !== undefined ? { vmlinuz: resolve(io.cwd, values.vmlinuz), systemMap: resolve(io.cwd, values['system-map']!) } : {};
        const restored = await machineMod.restoreMachine(bytes, {
          trust: key.value.publicKey,
          ...kernelFiles,
          ...(auditPath !== undefined ? { auditPath } : {}),
        });
        if (!restored.ok) {
          const e = restored.error;
          if (values.json) io.out(`${JSON.stringify({ restored: null, error: { kind: e.kind, message: e.message } })}\n`);
          else io.err(`heki restore: ${file} refused (${e.kind}): ${e.message}\n`);
          // A file that is not a snapshot of this format (or a section not of its schema) is bad
          // input; a refused check (signature, key, digest, identity, the verifier) is a verdict.
          return e.kind === 'input' || e.kind === 'malformed' ? EXIT_USAGE : EXIT_NEGATIVE;
        }
        const m = restored.value;
        const core = m.vmm.core;
        const id = m.vmm.identity;
        const text = await m.read('_stext', 1, 'kernel');
        const poke = await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel');
        const summary = {
          vm: id.vm,
          vmId: id.vmId,
          pins: { cr0: `0x${core.pins.get(0).toString(16)}`, cr4: `0x${core.pins.get(4).toString(16)}` },
          lockedFrames: core.ept.entries().length,
          platformPinned: m.vmm.platformPinned,
          modules: [...(m.kernel?.modules.loaded.keys() ?? [])],
          bootEnded: core.auth?.bootEnded ?? false,
          guestRuns: text.outcome === 'allowed',
          textWriteDenied: poke.outcome === 'denied',
        };
        // The attacks run on the restored VM's own CPU model (the snapshot carries it).
        const cpuModel = m.vmm.cpuModel;
        await m.dispose();
        if (auditPath !== undefined) (values.json ? io.err : io.out)(auditNotice(auditPath));
        if (!values.json) {
          io.out(
            `restored VM ${summary.vm} (${summary.vmId}) from ${file}: CR0 pins ${summary.pins.cr0}, CR4 pins ${summary.pins.cr4}, ` +
              `${summary.lockedFrames} frames with EPT attributes, platform ${summary.platformPinned ? 'pinned' : 'not pinned'}, ` +
              `${summary.modules.length} module(s)${summary.modules.length ? ` (${summary.modules.join(', ')})` : ''}; the guest runs (${text.reason}); a write to its text: ${poke.outcome}\n`,
          );
        }
        if (!values.attacks) {
          if (values.json) io.out(`${JSON.stringify({ restored: summary })}\n`);
          return EXIT_OK;
        }
        const attacksMod = await import('../../checks/attacks.ts');
        const chosen = attacksMod.selectAttacks(positionals.slice(1));
        if (!chosen.ok) {
          io.err(`heki restore: ${chosen.error.message} (run 'heki attacks --list' for the names)\n`);
          return EXIT_USAGE;
        }
        const skipped = chosen.value.filter((a) => a.needs?.protectedMemory).map((a) => a.name);
        const names = chosen.value.filter((a) => !a.needs?.protectedMemory).map((a) => a.name);
        if (!values.json && skipped.length) io.out(`left out (a protected-memory VM cannot be snapshotted): ${skipped.join(', ')}\n`);
        const progress = new Progress(io, 'heki restore');
        let finished = 0;
        progress.status(`0/${names.length} attacks done, restoring the first copies...`);
        const run = await attacksMod.runAttacks(names, {
          cpu: cpuModel,
          machine: async (config) => {
            const r = await machineMod.restoreMachine(bytes, {
              trust: key.value.publicKey,
              ...kernelFiles,
              ...(config.image ? { image: config.image } : {}),
              ...(config.faultInjection ? { faultInjection: true } : {}),
              ...(config.verifierSpare === false ? { verifierSpare: false } : {}),
            });
            return r.ok ? ok(r.value) : err(`${r.error.kind}: ${r.error.message}`);
          },
          onReport: (r) => {
            finished++;
            progress.step(`${finished}/${names.length} attacks done (${r.name}: ${r.stopped ? 'stopped' : r.applicable ? 'NOT stopped' : 'n/a'})`);
            if (!values.json) progress.out(`${r.name}  ${r.stopped ? 'stopped' : r.applicable ? 'NOT STOPPED' : 'n/a'}  ${r.stop}\n`);
          },
        });
        progress.done();
        if (!run.ok) {
          io.err(`heki restore: ${run.error.message}\n`);
          return EXIT_USAGE;
        }
        const r = run.value;
        const failed = r.attacks.filter((a) => a.applicable && !a.stopped).map((a) => a.name);
        if (values.json)
          io.out(`${JSON.stringify({ restored: summary, attacks: r.attacks, total: r.total, stopped: r.stopped, notApplicable: r.notApplicable, skipped })}\n`);
        else
          io.out(
            `${r.stopped} of ${r.total} attacks stopped on the restored VM${r.notApplicable ? ` (${r.notApplicable} not applicable on CPU model ${r.cpu})` : ''}${failed.length ? `; NOT stopped: ${failed.join(', ')}` : ''}\n`,
          );
        return failed.length === 0 ? EXIT_OK : EXIT_NEGATIVE;
      });
    },
  };
}

/** The `heki restore` command. */
export const restoreCommand: CliCommand = createRestoreCommand();
