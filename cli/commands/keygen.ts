/**
 * `heki keygen`: makes an Ed25519 key pair and writes it as a secret key file (mode 0600) and
 * a public key file, in the formats of tools/key-files.ts.
 */
import { resolve } from 'node:path';
import { EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { isKeyRole, KEY_ROLES } from '../../shared/keyring-data.ts';
import { writeKeyPairFiles } from '../../tools/key-files.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';

const USAGE = `usage: heki keygen --out <dir> [--role module-signing|kernel-vendor|vmm] [--name <basename>] [--force]

Generates an Ed25519 key pair and writes <dir>/<name>.secret.json (mode 0600) and
<dir>/<name>.pub.json. Prints the key id (first 8 bytes of SHA-256 of the public key).

  --out <dir>      directory to write into (created if missing)
  --role <role>    what the key may sign: module-signing (default), kernel-vendor (manifests)
                   or vmm (a VMM's VM state images: hibernation, heki snapshot)
  --name <name>    file base name (default heki-signing-key)
  --force          overwrite existing key files
`;

/** The `heki keygen` command. */
export const keygenCommand: CliCommand = {
  name: 'keygen',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values } = parseFlags(
        argv,
        {
          out: { type: 'string' },
          role: { type: 'string', default: 'module-signing' },
          name: { type: 'string', default: 'heki-signing-key' },
          force: { type: 'boolean', default: false },
        },
        { min: 0, max: 0, names: '' },
      );
      if (values.out === undefined) throw new UsageError('missing --out <dir>');
      if (!isKeyRole(values.role)) throw new UsageError(`unknown role '${values.role}' (expected ${KEY_ROLES.join(' or ')})`);
      const name = values.name ?? 'heki-signing-key';
      if (name === '' || name.includes('/') || name.includes('\\') || name === '.' || name === '..') {
        throw new UsageError(`--name must be a plain file base name, got '${name}'`);
      }
      const written = writeKeyPairFiles(resolve(io.cwd, values.out), name, generateEd25519KeyPair(), values.role, {
        force: values.force === true,
      });
      if (!written.ok) {
        io.err(`heki keygen: ${written.error}\n`);
        return EXIT_USAGE;
      }
      io.out(
        `key id ${written.value.keyId} (${values.role})\n` +
          `secret key: ${written.value.secretPath} (mode 0600, keep it private)\n` +
          `public key: ${written.value.publicPath}\n`,
      );
      return EXIT_OK;
    });
  },
};
