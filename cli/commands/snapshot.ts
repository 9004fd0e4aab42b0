/**
 * `heki snapshot`: runs a scenario (as `heki run` does) and, when every step held, writes a
 * migration snapshot of the machine as the last step left it: the whole VM and its complete
 * protection state, signed by the VMM's per-VM Ed25519 key (docs/lifecycle.md). `heki
 * restore` restores it into a fresh VM.
 */
import { CPU_FLAG, CPU_FLAG_USAGE, cpuFlagModel } from '../cpu-flag.ts';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { readScenarioInput } from '../scenario-input.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import type { MachineApi } from '../../machine/machine-api.ts';
import { runScenario } from '../../scenario/run.ts';
import { formatColumns, formatHeader, formatStepRow, formatSummary } from '../../scenario/table.ts';
import { formatPublicKeyFile, loadSecretKeyFile } from '../../tools/key-files.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { machineConfigOf } from './run.ts';
import { preflight } from '../preflight.ts';

const USAGE = `usage: heki snapshot <scenario.yaml> --out <file> [--key <vmm.secret.json>] [--cpu <name|folder>] [--json]

Runs the scenario like 'heki run' and, when every step held, writes a migration snapshot of
the machine as its last step left it (a kernel must be running): guest memory, the vCPUs,
the guest kernel's bookkeeping, and the complete protection state (CR pins, MSR and CR
filters, EPT attributes and immutable ranges, keyring and manifest, what the verifier knows,
the audit log's head), signed with the VMM's Ed25519 key for the VM. 'heki restore <file>
--trust <key>' restores it into a fresh VM.

  --out <file>    where to write the snapshot (mode 0600)
  --key <file>    the VMM's key, a secret key file of role vmm ('heki keygen --role vmm');
                  without it a fresh key signs, and its public key is written to
                  <file>.pub.json (role vmm): give that file to 'heki restore --trust'
${CPU_FLAG_USAGE}                          (overrides the scenario's cpu:; the snapshot keeps the model)
  --json          print one JSON object: {"scenario": <heki run --json result>,
                  "snapshot": {"file","bytes","sha256","keyId","publicKey"} | null, "error"?}

Exit 0 when the snapshot was written, 1 when a step did not hold or the VM could not be
snapshotted (nothing is written), 2 on bad usage or input.
`;

/** Makes the command. */
export function createSnapshotCommand(): CliCommand {
  return {
    name: 'snapshot',
    usage: USAGE,
    run(argv: string[], io: CliIo): Promise<number> {
      return withUsage(USAGE, io, argv, async () => {
        const { values, positionals } = parseFlags(
          argv,
          { out: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean', default: false }, ...CPU_FLAG },
          { min: 1, max: 1, names: '<scenario.yaml>' },
        );
        if (values.out === undefined) throw new UsageError('--out <file> is required');
        const out = resolve(io.cwd, values.out);
        const cpu = cpuFlagModel(values.cpu, io);
        const display = positionals[0]!;
        const scenario = readScenarioInput(io, display, 'snapshot');
        if (!scenario) return EXIT_USAGE;
        let key = generateEd25519KeyPair();
        let ownKey = false;
        if (values.key !== undefined) {
          const k = loadSecretKeyFile(resolve(io.cwd, values.key));
          if (!k.ok) {
            io.err(`heki snapshot: ${k.error}\n`);
            return EXIT_USAGE;
          }
          if (k.value.role !== 'vmm') {
            io.err(`heki snapshot: ${values.key}: key ${k.value.keyId} has role ${k.value.role}; snapshots need a vmm key ('heki keygen --role vmm')\n`);
            return EXIT_USAGE;
          }
          key = k.value.keyPair;
          ownKey = true;
        }
        const planned = preflight({ files: [{ flag: '--out', path: out }, ...(ownKey ? [] : [{ flag: '--out (its public key)', path: `${out}.pub.json` }])] });
        if (!planned.ok) {
          io.err(`heki snapshot: ${planned.error}\n`);
          return EXIT_USAGE;
        }
        const runtime = await import('../../machine/machine.ts');
        const built = await runtime.createMachineDetailed({ ...machineConfigOf(scenario), ...(cpu !== undefined ? { cpu } : {}), vmmKey: key });
        if (!built.ok) {
          io.err(`heki snapshot: ${display}: cannot start the machine: ${built.error.message}\n`);
          return built.error.kind === 'input' ? EXIT_USAGE : EXIT_NEGATIVE;
        }
        const machine = built.value;
        // The runner disposes the machine after the last step: take the snapshot just before,
        // when every step held.
        let held = true;
        let snapshot: { ok: true; value: Uint8Array } | { ok: false; error: string } | undefined;
        let signer = key.publicKey;
        const wrapped: MachineApi = new Proxy(machine, {
          get(target, prop) {
            if (prop === 'dispose') {
              return async () => {
                if (held) snapshot = await runtime.snapshotMachine(machine);
                // A migration step moved the VM to another VMM: that VMM signed.
                signer = machine.vmm.identity.publicKey;
                await machine.dispose();
              };
            }
            const v = Reflect.get(target, prop) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
        if (!values.json) io.out(`${formatHeader(scenario, display)}\n${formatColumns()}\n`);
        const result = await runScenario(
          scenario,
          wrapped,
          (r) => {
            held &&= r.ok;
            if (!values.json) io.out(`${formatStepRow(r)}\n`);
          },
          { onWarning: (m) => io.err(`heki snapshot: warning: ${m}\n`) },
        );
        let written: { file: string; bytes: number; sha256: string; keyId: string; publicKey: string | null } | null = null;
        let error: string | undefined;
        if (!result.passed) error = 'a step did not hold: no snapshot written';
        else if (!snapshot) error = 'the machine was disposed before the snapshot could be taken';
        else if (!snapshot.ok) error = `the VM cannot be snapshotted: ${snapshot.error}`;
        else {
          try {
            writeFileSync(out, snapshot.value, { mode: 0o600 });
            let pub: string | null = null;
            if (!ownKey) {
              pub = `${out}.pub.json`;
              writeFileSync(pub, formatPublicKeyFile(signer, 'vmm'));
            }
            written = {
              file: out,
              bytes: snapshot.value.length,
              sha256: createHash('sha256').update(snapshot.value).digest('hex'),
              keyId: ed25519KeyIdHex(signer),
              publicKey: pub,
            };
          } catch (e) {
            io.err(`heki snapshot: cannot write ${out}: ${e instanceof Error ? e.message : String(e)}\n`);
            return EXIT_USAGE;
          }
        }
        if (values.json) {
          io.out(`${JSON.stringify({ scenario: result, snapshot: written, ...(error ? { error } : {}) })}\n`);
        } else {
          io.out(`${formatSummary(result)}\n`);
          if (written) {
            io.out(`wrote ${written.file}: ${written.bytes} bytes, SHA-256 ${written.sha256}, signed by vmm key ${written.keyId}\n`);
            if (written.publicKey) io.out(`the VMM's public key is in ${written.publicKey}: heki restore ${values.out} --trust ${values.out}.pub.json\n`);
          } else {
            io.err(`heki snapshot: ${error}\n`);
          }
        }
        return written ? EXIT_OK : EXIT_NEGATIVE;
      });
    },
  };
}

/** The `heki snapshot` command. */
export const snapshotCommand: CliCommand = createSnapshotCommand();
