/**
 * `heki verify-module`: runs the verifier's module signature check (the same
 * verifyModuleSignature the verifier VM runs) on a module file, against a keyring built from
 * the given key, certificate and revocation files.
 */
import { readHostFile } from '../../shared/host-file.ts';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { keyringFromFiles } from '../../tools/key-files.ts';
import { verifyModuleSignature } from '../../verifier-vm/signature/verify-module.ts';

const USAGE = `usage: heki verify-module <file.ko> [--pubkey <file>]... [--cert <x509.der>]... [--revoked <file>]... [--json]

Checks a module's signature trailer as the verifier VM does. Exit 0 if accepted, 1 if
denied (unsigned, malformed trailer, unknown or revoked key, bad signature), 2 on bad usage,
an unreadable module, or an unreadable or malformed key, certificate or revocation file.

  --pubkey <file>    Ed25519 public key file (from 'heki keygen'); repeatable
  --cert <file>      X.509 certificate (DER or PEM) for PKCS#7 signatures; repeatable
  --revoked <file>   revocation list (lines 'ed25519:<16 hex>' or 'x509-sha256:<64 hex>'); repeatable
  --impl <name>      Ed25519 implementation: node (default) or tweetnacl
  --json             print one JSON object {"file","accepted","scheme","reason",...}
`;

/** The `heki verify-module` command. */
export const verifyModuleCommand: CliCommand = {
  name: 'verify-module',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values, positionals } = parseFlags(
        argv,
        {
          pubkey: { type: 'string', multiple: true },
          cert: { type: 'string', multiple: true },
          revoked: { type: 'string', multiple: true },
          impl: { type: 'string', default: 'node' },
          json: { type: 'boolean', default: false },
        },
        { min: 1, max: 1, names: '<file.ko>' },
      );
      const impl = values.impl;
      if (impl !== 'node' && impl !== 'tweetnacl') throw new UsageError(`unknown --impl '${impl}' (expected node or tweetnacl)`);
      const abs = (p: string): string => resolve(io.cwd, p);
      const keyring = keyringFromFiles({
        pubkeys: (values.pubkey ?? []).map(abs),
        certs: (values.cert ?? []).map(abs),
        revoked: (values.revoked ?? []).map(abs),
      });
      if (!keyring.ok) {
        io.err(`heki verify-module: ${keyring.error}\n`);
        return EXIT_USAGE;
      }
      const file = positionals[0]!;
      const bytes = readHostFile(abs(file));
      if (!bytes.ok) {
        io.err(`heki verify-module: ${bytes.error}\n`);
        return EXIT_USAGE;
      }
      const v = verifyModuleSignature(bytes.value, keyring.value, { ed25519: impl });
      if (values.json) {
        io.out(
          JSON.stringify({
            file,
            accepted: v.accepted,
            scheme: v.scheme,
            reason: v.reason,
            ...(v.keyId !== undefined ? { keyId: v.keyId } : {}),
          }) + '\n',
        );
      } else {
        io.out(`${file}: ${v.accepted ? 'accepted' : 'DENIED'} (${v.scheme}): ${v.reason}\n`);
      }
      return v.accepted ? EXIT_OK : EXIT_NEGATIVE;
    });
  },
};
