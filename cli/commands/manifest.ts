/**
 * `heki manifest`: builds the signed kernel manifest from a real kernel image (vmlinuz and its
 * System.map) and signs it with a kernel-vendor Ed25519 key. The VMM hands the file to the
 * verifier, which refuses it unless a kernel-vendor key of its keyring signed it.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { hostPathMissing, readHostFile } from '../../shared/host-file.ts';
import { checkOutputFlag } from '../../shared/host-output.ts';
import { resolve } from 'node:path';
import { EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { loadSecretKeyFile } from '../../tools/key-files.ts';
import { ManifestBuildError, buildManifestBody, bzImageKernelName, signManifest } from '../../tools/manifest-builder.ts';
import { loadKernelImage } from '../../shared/kernel-image/load-kernel.ts';

const USAGE = `usage: heki manifest --vmlinuz <file> --system-map <file> --key <secret.json> --out <file> [--kernel <name>]

Builds the kernel manifest the verifier checks the guest against (.text with ftrace sites
as NOPs and .rodata hashes, linker boundaries, every __mcount_loc site, every jump-label
entry, every export, the ftrace trampolines and __fentry__) from a bzImage and its
System.map, and signs it with a kernel-vendor key.

  --vmlinuz <file>     the bzImage (decompressed in memory; nothing is cached)
  --system-map <file>  the System.map of that kernel
  --key <file>         secret key file of role kernel-vendor ('heki keygen --role kernel-vendor')
  --out <file>         where to write the signed manifest (JSON)
  --kernel <name>      release name to record (default: linux-<release> from the bzImage header)

Exit codes: 0 written, 2 bad usage or unreadable/invalid input.
`;

/** The `heki manifest` command. */
export const manifestCommand: CliCommand = {
  name: 'manifest',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values } = parseFlags(
        argv,
        { vmlinuz: { type: 'string' }, 'system-map': { type: 'string' }, key: { type: 'string' }, out: { type: 'string' }, kernel: { type: 'string' } },
        { min: 0, max: 0, names: '' },
      );
      if (values.vmlinuz === undefined) throw new UsageError('missing --vmlinuz <file>');
      if (values['system-map'] === undefined) throw new UsageError('missing --system-map <file>');
      if (values.key === undefined) throw new UsageError('missing --key <secret.json>');
      if (values.out === undefined) throw new UsageError('missing --out <file>');
      if (values.kernel !== undefined && !/^[\w.+-]{1,128}$/.test(values.kernel))
        throw new UsageError(`--kernel '${values.kernel}' must be 1-128 letters, digits, '.', '+', '-' or '_'`);
      const fail = (msg: string): number => {
        io.err(`heki manifest: ${msg}\n`);
        return EXIT_USAGE;
      };
      const vmlinuzPath = resolve(io.cwd, values.vmlinuz);
      const mapPath = resolve(io.cwd, values['system-map']);
      const outPath = resolve(io.cwd, values.out);
      const target = checkOutputFlag('--out', outPath);
      if (!target.ok) return fail(target.error);

      const key = loadSecretKeyFile(resolve(io.cwd, values.key));
      if (!key.ok) return fail(key.error);
      if (key.value.role !== 'kernel-vendor') {
        return fail(
          `${values.key}: key ${key.value.keyId} has role ${key.value.role}; manifests need a kernel-vendor key ('heki keygen --role kernel-vendor')`,
        );
      }
      if (hostPathMissing(vmlinuzPath)) return fail(`vmlinuz not found at ${vmlinuzPath} (the kernel fixtures live in ../shared/fixtures/<release>/)`);
      const read = readHostFile(vmlinuzPath);
      if (!read.ok) return fail(read.error);
      const vmlinuz = read.value;
      let kernelName = values.kernel;
      if (kernelName === undefined) {
        const n = bzImageKernelName(vmlinuz);
        if (!n.ok) return fail(`${vmlinuzPath}: cannot tell the kernel release (${n.error}); pass --kernel <name>`);
        kernelName = n.value;
      }
      const t0 = performance.now();
      const image = await loadKernelImage({ vmlinuzPath, systemMapPath: mapPath, cacheDir: false });
      if (!image.ok) return fail(image.error.message);
      let text: string;
      let counts: string;
      try {
        const body = buildManifestBody(image.value, { kernel: kernelName, vmlinuzSha256: createHash('sha256').update(vmlinuz).digest('hex') });
        text = signManifest(body, key.value.keyPair);
        counts = `${body.mcountSites.length} ftrace sites, ${body.jumpEntries.length} jump entries, ${Object.keys(body.exports).length} exports`;
      } catch (e) {
        if (e instanceof ManifestBuildError) return fail(`${vmlinuzPath}: ${e.message}`);
        throw e;
      }
      const ms = performance.now() - t0;
      try {
        writeFileSync(outPath, text);
      } catch (e) {
        return fail(`${outPath}: cannot write (${e instanceof Error ? e.message : String(e)})`);
      }
      io.out(`wrote ${outPath}: ${kernelName}, ${counts}; signed by kernel-vendor key ${key.value.keyId} (built in ${(ms / 1000).toFixed(1)} s)\n`);
      return EXIT_OK;
    });
  },
};
