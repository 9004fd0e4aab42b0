/**
 * `heki sign`: signs a module with an Ed25519 secret key, replacing any signature trailer it
 * already has (a PKCS#7 one from the distribution, say) with a PKEY_ID_HEKI_ED25519 trailer.
 */
import { writeFileSync } from 'node:fs';
import { readHostFile } from '../../shared/host-file.ts';
import { checkOutputFlag } from '../../shared/host-output.ts';
import { resolve } from 'node:path';
import { EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { loadSecretKeyFile } from '../../tools/key-files.ts';
import { signModuleFile } from '../../tools/sign-module.ts';

const USAGE = `usage: heki sign <in.ko> --key <secret.json> --out <out.ko> [--signer <name>]

Signs a module with an Ed25519 module-signing key: strips any existing signature trailer
and appends a heki Ed25519 one (id_type 3, SHA-256, 8-byte key id, 64-byte signature).

  --key <file>      secret key file written by 'heki keygen'
  --out <file>      where to write the signed module (may be the input file)
  --signer <name>   signer name to record in the trailer (informational, not signed)
`;

/** The `heki sign` command. */
export const signCommand: CliCommand = {
  name: 'sign',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values, positionals } = parseFlags(
        argv,
        { key: { type: 'string' }, out: { type: 'string' }, signer: { type: 'string' } },
        { min: 1, max: 1, names: '<in.ko>' },
      );
      if (values.key === undefined) throw new UsageError('missing --key <secret.json>');
      if (values.out === undefined) throw new UsageError('missing --out <out.ko>');
      const inPath = resolve(io.cwd, positionals[0]!);
      const outPath = resolve(io.cwd, values.out);
      const fail = (msg: string): number => {
        io.err(`heki sign: ${msg}\n`);
        return EXIT_USAGE;
      };
      const target = checkOutputFlag('--out', outPath);
      if (!target.ok) return fail(target.error);

      const key = loadSecretKeyFile(resolve(io.cwd, values.key));
      if (!key.ok) return fail(key.error);
      if (key.value.role !== 'module-signing') {
        return fail(`${values.key}: key ${key.value.keyId} has role ${key.value.role}; modules need a module-signing key`);
      }
      const read = readHostFile(inPath);
      if (!read.ok) return fail(read.error);
      const file = read.value;
      const signer = values.signer === undefined ? undefined : new TextEncoder().encode(values.signer);
      if (signer !== undefined && signer.length > 255) return fail('--signer is longer than 255 bytes');
      const signed = signModuleFile(file, key.value.keyPair, signer);
      if (!signed.ok) return fail(`${inPath}: ${signed.error}`);
      try {
        writeFileSync(outPath, signed.value);
      } catch (e) {
        return fail(`${outPath}: cannot write (${e instanceof Error ? e.message : String(e)})`);
      }
      io.out(`signed ${outPath} with key ${key.value.keyId} (${signed.value.length} bytes)\n`);
      return EXIT_OK;
    });
  },
};
