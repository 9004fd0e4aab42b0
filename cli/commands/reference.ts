/**
 * `heki reference check`: compares what the simulated guest's boot and module loads write
 * with a real boot's dump (checks/reference/reference-check.ts). Exit 0 when not one byte
 * differs, 1 when some do (or a module the real kernel loaded did not load, or the machine did
 * not boot), 2 on bad usage or a malformed reference folder or module file, named.
 */
import { join, resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { fixturePaths } from '../../shared/kernel-image/fixture-paths.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { readHostFile } from '../../shared/host-file.ts';
import type { ReferenceCheckReport } from '../../checks/reference/reference-check.ts';
import type { SectionComparison } from '../../checks/reference/section-compare.ts';

/** Differing sites the text report lists per section (`--json` lists all it has). */
const TEXT_SITES = 3;

/** A module file is at most this big (kvm.ko is 1.6 MiB). */
const MAX_MODULE_BYTES = 64 << 20;

const USAGE = `usage: heki reference check <folder | ${[...BUILTIN_CPU_MODELS.keys()].join(' | ')}> [--modules <dir>] [--cert <x509>]... [--pubkey <file>]... [--json]

Boots the reference folder's CPU model on the real Debian 6.1 kernel, sets the runtime state
the real kernel's own init code left (static keys it enabled or disabled, static calls it
updated: read off the folder's text dump) through the guest's ordinary authenticated
jump-label and static-call paths, loads the folder's modules in its "loaded" order at the
section addresses it recorded (a module in "failed" is skipped), and compares the kernel
text and every dumped module section with the real bytes. A named model is the fixture's
reference folder of that name (../shared/fixtures/linux-6.1.0-56-amd64/reference/<name>).
The folder format: ../shared/fixtures/linux-6.1.0-56-amd64/reference/README.md; make one with
../shared/tools/kernel-reference/.

Per section it prints the bytes compared and differing and the first differing sites with
the table that owns each (.altinstructions, .return_sites, __jump_table, ...).

Exit 0 when no byte differs, 1 when some do (or a module the real boot loaded did not load,
or the guest did not boot), 2 on bad usage or a malformed folder or module file (the file
and the field named).

  --modules <dir>    where the folder's modules are (default: the fixture's modules)
  --cert <file>      X.509 certificate the verifier trusts for module signatures; repeatable
                     (default: the fixture kernel's signing certificate)
  --pubkey <file>    Ed25519 public key file (from 'heki keygen') the verifier trusts; repeatable
  --json             print one JSON object: {"model","kernel":{".text":{"bytes","differing",
                     "first":[{"addr","owner"}]}},"modules":{"<name>":{"<section>":{...}}},
                     "runtime":{"staticKeys","staticKeysFromModules",
                     "staticCalls","problems"},"skipped":[{"module",
                     "reason"}],"errors":[{"module","reason"}],"differing","ms"}
`;

function sectionLine(name: string, c: SectionComparison): string[] {
  const lines = [`  ${name.padEnd(22)} ${String(c.bytes).padStart(9)} bytes  ${String(c.differing).padStart(7)} differ`];
  for (const f of c.first.slice(0, TEXT_SITES)) lines.push(`      ${f.addr}  ${f.owner}`);
  if (c.first.length > TEXT_SITES) lines.push(`      ... (--json lists ${c.first.length})`);
  return lines;
}

/** The human-readable report. */
export function formatReferenceReport(r: ReferenceCheckReport): string {
  const out = [
    `reference check ${r.model}: ${r.differing === 0 ? 'the simulated text equals the real boot' : `${r.differing} byte(s) differ`}${r.errors.length ? `; ${r.errors.length} module(s) the real boot loaded did not load` : ''}`,
    `runtime state set through the authenticated paths: ${r.runtime.staticKeys} static key(s), ${r.runtime.staticCalls} static call(s)`,
    ...r.runtime.problems.map((p) => `  problem: ${p}`),
    'kernel',
    ...Object.entries(r.kernel).flatMap(([n, c]) => sectionLine(n, c)),
  ];
  for (const [m, secs] of Object.entries(r.modules)) out.push(`module ${m}`, ...Object.entries(secs).flatMap(([n, c]) => sectionLine(n, c)));
  for (const s of r.skipped) out.push(`skipped ${s.module}: ${s.reason}`);
  for (const e of r.errors) out.push(`NOT LOADED ${e.module}: ${e.reason}`);
  return `${out.join('\n')}\n`;
}

async function check(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    {
      modules: { type: 'string' },
      cert: { type: 'string', multiple: true },
      pubkey: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
    { min: 1, max: 1, names: '<folder>' },
  );
  const fx = fixturePaths();
  const given = positionals[0]!;
  if (given === '') throw new UsageError('the reference folder is an empty string');
  const dir = BUILTIN_CPU_MODELS.has(given) ? join(fx.dir, 'reference', given) : resolve(io.cwd, given);
  const fail = (message: string): number => {
    io.err(`heki reference check: ${message}\n`);
    return EXIT_USAGE;
  };
  // Loaded on first use: `heki --help` does not load the machine.
  const { readReferenceFolder } = await import('../../checks/reference/reference-folder.ts');
  const ref = readReferenceFolder(dir);
  if (!ref.ok) return fail(ref.error);
  const modulesDir = values.modules !== undefined ? resolve(io.cwd, values.modules) : fx.modulesDir;
  const { checkReference } = await import('../../checks/reference/reference-check.ts');
  const r = await checkReference(ref.value, {
    name: given,
    keys: {
      pubkeys: (values.pubkey ?? []).map((p) => resolve(io.cwd, p)),
      certs: values.cert ? values.cert.map((p) => resolve(io.cwd, p)) : [fx.signingKeyDer],
      revoked: [],
    },
    readModule: (file) => readHostFile(join(modulesDir, file), { maxBytes: MAX_MODULE_BYTES }),
  });
  if (!r.ok) {
    if (r.error.kind === 'input') return fail(r.error.message);
    io.err(`heki reference check: ${r.error.message}\n`);
    return EXIT_NEGATIVE;
  }
  io.out(values.json ? `${JSON.stringify(r.value)}\n` : formatReferenceReport(r.value));
  return r.value.differing === 0 && r.value.errors.length === 0 ? EXIT_OK : EXIT_NEGATIVE;
}

/** The `heki reference` command (one sub-command: `check`). */
export const referenceCommand: CliCommand = {
  name: 'reference',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const [sub, ...rest] = argv;
      if (sub !== 'check') throw new UsageError(sub === undefined ? 'missing sub-command (check)' : `unknown sub-command '${sub}' (expected check)`);
      return check(rest, io);
    });
  },
};
