/**
 * Module authentication on the real fixture modules: what the verifier does for a module load
 * (the signature plugin: SHA-256 of the image and the signature; module-end-state: parse,
 * relocate at the guest's addresses and compare every section), in MB/s of module image
 * (MB = 10^6 bytes).
 *
 * The requests are real: a booted real machine loads all ten fixture modules (dependencies
 * first, as modprobe does) and the benchmark keeps the module-load requests its core sent.
 * They are then decided again by a verifier engine in this thread, `rounds` times, each round
 * for a fresh VM, so the figure is the verifier's own work, not the transport's. Three
 * signature schemes: Debian's PKCS#7 (RSA-4096, node:crypto), and the same modules re-signed
 * with Ed25519 in a temporary directory (tools/sign-module.ts), checked with
 * node:crypto (the verifier's default) and with tweetnacl (the pure-JS reference).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestOf, VerifyRequest } from '../shared/protocol.ts';
import { Keyring } from '../verifier-vm/keyring.ts';
import { type KeyringData } from '../shared/keyring-data.ts';
import { formatPublicKeyFile, keyringDataFromFiles } from '../tools/key-files.ts';
import { loadManifest } from '../verifier-vm/manifest.ts';
import { BUILTIN_PLUGINS } from '../verifier-vm/plugins/index.ts';
import { generateEd25519KeyPair } from '../shared/crypto/ed25519.ts';
import { signModuleFile } from '../tools/sign-module.ts';
import { verifyModuleSignature } from '../verifier-vm/signature/verify-module.ts';
import { Verifier } from '../verifier-vm/verifier.ts';
import type { BenchContext } from './context.ts';
import { bootReal } from './real-machine.ts';

/** One scheme's figures. */
export interface ModuleAuthFigures {
  readonly scheme: 'pkcs7' | 'ed25519-node' | 'ed25519-tweetnacl';
  readonly modules: number;
  readonly bytes: number;
  /** Whole verification (hash, signature, end state). */
  readonly mbPerSecond: number;
  /** The signature plugin's part alone (hash and signature). */
  readonly signatureMbPerSecond: number;
}

/** The captured requests of one signing scheme, and the key files they need. */
interface Captured {
  readonly requests: ReadonlyArray<RequestOf<'module-load'>>;
  /**
   * The requests in the order the core sent them: each module-load, then that module's
   * module-init-free once its init returned (the next load may use the freed init memory, so
   * the verifier must hear of the free before it).
   */
  readonly steps: ReadonlyArray<RequestOf<'module-load'> | RequestOf<'module-init-free'>>;
  /** The end-of-boot request of the same machine: a VM's verifier learns the kernel's key states from it, which module loads depend on. */
  readonly boot: RequestOf<'kernel-text'>;
  readonly keyring: KeyringData;
}

/** Loads every module in `dir` on a booted real machine and keeps the module-load requests. */
async function capture(
  ctx: BenchContext,
  dir: string,
  pubkeys: readonly string[],
): Promise<{ requests: RequestOf<'module-load'>[]; steps: Array<RequestOf<'module-load'> | RequestOf<'module-init-free'>>; boot: RequestOf<'kernel-text'> }> {
  const { machine, bootRequest } = await bootReal(ctx, { image: await ctx.image(), keys: { pubkeys, certs: [ctx.fixtures.signingKeyDer], revoked: [] } });
  const requests: RequestOf<'module-load'>[] = [];
  const steps: Array<RequestOf<'module-load'> | RequestOf<'module-init-free'>> = [];
  const link = machine.link;
  const verify = link.verify.bind(link);
  // The core's port is the link: keep what the core asks, pass it on unchanged.
  link.verify = (r) => {
    if (r.kind === 'module-load') {
      const load = { ...r, v: 1, id: 0 } as RequestOf<'module-load'>;
      requests.push(load);
      steps.push(load);
    } else if (r.kind === 'module-init-free') steps.push({ ...r, v: 1, id: 0 } as RequestOf<'module-init-free'>);
    return verify(r);
  };
  try {
    for (const file of readdirSync(dir)
      .filter((f) => f.endsWith('.ko'))
      .sort()) {
      const r = await machine.loadModule(join(dir, file));
      if (r.outcome !== 'allowed') throw new Error(`loading ${file}: ${r.reason}`);
    }
  } finally {
    await machine.dispose();
  }
  if (!bootRequest) throw new Error('the machine booted without an end-of-boot request');
  return { requests, steps, boot: bootRequest };
}

/** The first `limit` module loads (all without a limit) and the steps that belong to them. */
function limited(c: Pick<Captured, 'requests' | 'steps'>, limit: number | undefined): Pick<Captured, 'requests' | 'steps'> {
  const requests = c.requests.slice(0, limit);
  const names = new Set(requests.map((r) => r.name));
  return { requests, steps: c.steps.filter((s) => names.has(s.name)) };
}

/** The fixture modules re-signed with a fresh Ed25519 key, in a temporary directory. */
function resign(modulesDir: string, tmp: string): { dir: string; pubkey: string } {
  const key = generateEd25519KeyPair();
  const pubkey = join(tmp, 'bench.pub.json');
  writeFileSync(pubkey, formatPublicKeyFile(key.publicKey, 'module-signing'));
  for (const f of readdirSync(modulesDir).filter((n) => n.endsWith('.ko'))) {
    const signed = signModuleFile(new Uint8Array(readFileSync(join(modulesDir, f))), key);
    if (!signed.ok) throw new Error(`${f}: ${signed.error}`);
    writeFileSync(join(tmp, f), signed.value);
  }
  return { dir: tmp, pubkey };
}

/** Decides `requests` `rounds` times on a fresh engine; MB/s of module image. */
async function decide(ctx: BenchContext, c: Captured, rounds: number, config: Record<string, Record<string, unknown>>): Promise<number> {
  const init = await ctx.verifierInit();
  const data: KeyringData = { ...c.keyring, ed25519: [...c.keyring.ed25519, ...init.keyring.ed25519] };
  const keyring = Keyring.fromData(data);
  if (!keyring.ok) throw new Error(keyring.error);
  const manifest = loadManifest(init.manifest!, keyring.value);
  if (!manifest.ok) throw new Error(manifest.error);
  const engine = new Verifier({ keyring: keyring.value, plugins: BUILTIN_PLUGINS, manifest: manifest.value, pluginConfig: config });
  let bytes = 0;
  let id = 1;
  let ms = 0;
  for (let r = 0; r < rounds; r++) {
    // Each round is a fresh VM that first ends its boot (untimed): the verifier records the
    // kernel's key states from the text it verified, as it does before any real module load.
    const b = engine.verify({ ...c.boot, id: id++, vm: `bench${r}` } as VerifyRequest);
    if (!b.ok) throw new Error(`the end-of-boot check was refused: ${b.reason}`);
    const t0 = performance.now();
    for (const req of c.steps) {
      const v = engine.verify({ ...req, id: id++, vm: `bench${r}` } as VerifyRequest);
      if (!v.ok) throw new Error(`${req.kind} of module ${req.name} was not allowed: ${v.reason}`);
      if (req.kind === 'module-load') bytes += req.image.length;
    }
    ms += performance.now() - t0;
  }
  return bytes / 1e6 / (ms / 1000);
}

/** The signature check alone (hash and signature) on the same images. */
function signatureOnly(c: Captured, rounds: number, impl: 'node' | 'tweetnacl'): number {
  const keyring = Keyring.fromData(c.keyring);
  if (!keyring.ok) throw new Error(keyring.error);
  let bytes = 0;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (const req of c.requests) {
      const v = verifyModuleSignature(req.image, keyring.value, { ed25519: impl });
      if (!v.accepted) throw new Error(`${req.name}: ${v.reason}`);
      bytes += req.image.length;
    }
  }
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/** SHA-256 alone over the images, for reference. */
export function sha256MbPerSecond(images: readonly Uint8Array[], rounds: number): number {
  let bytes = 0;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (const img of images) {
      createHash('sha256').update(img).digest();
      bytes += img.length;
    }
  }
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/** What the module-authentication run measured. */
export interface ModuleAuth {
  readonly figures: readonly ModuleAuthFigures[];
  readonly sha256MbPerSecond: number;
  readonly modules: readonly string[];
}

/** Captures the real requests (PKCS#7 and Ed25519) and measures the three schemes. */
export async function measureModuleAuth(ctx: BenchContext, rounds: number, limit?: number): Promise<ModuleAuth> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel and its signed modules (fixtures)');
  const certs = keyringDataFromFiles({ pubkeys: [], certs: [ctx.fixtures.signingKeyDer], revoked: [] });
  if (!certs.ok) throw new Error(certs.error);
  const tmp = mkdtempSync(join(tmpdir(), 'heki-bench-'));
  try {
    const p7 = await capture(ctx, ctx.fixtures.modulesDir, []);
    const pkcs7: Captured = { ...limited(p7, limit), boot: p7.boot, keyring: certs.value };
    const signed = resign(ctx.fixtures.modulesDir, tmp);
    const edKeys = keyringDataFromFiles({ pubkeys: [signed.pubkey], certs: [], revoked: [] });
    if (!edKeys.ok) throw new Error(edKeys.error);
    const e = await capture(ctx, signed.dir, [signed.pubkey]);
    const ed: Captured = { ...limited(e, limit), boot: e.boot, keyring: edKeys.value };
    const bytes = (c: Captured) => c.requests.reduce((a, r) => a + r.image.length, 0);
    const naclRounds = Math.max(1, Math.ceil(rounds / 4));
    const figures: ModuleAuthFigures[] = [
      {
        scheme: 'pkcs7',
        modules: pkcs7.requests.length,
        bytes: bytes(pkcs7),
        mbPerSecond: await decide(ctx, pkcs7, rounds, {}),
        signatureMbPerSecond: signatureOnly(pkcs7, rounds, 'node'),
      },
      {
        scheme: 'ed25519-node',
        modules: ed.requests.length,
        bytes: bytes(ed),
        mbPerSecond: await decide(ctx, ed, rounds, {}),
        signatureMbPerSecond: signatureOnly(ed, rounds, 'node'),
      },
      {
        scheme: 'ed25519-tweetnacl',
        modules: ed.requests.length,
        bytes: bytes(ed),
        mbPerSecond: await decide(ctx, ed, naclRounds, { 'module-signature': { ed25519: 'tweetnacl' } }),
        signatureMbPerSecond: signatureOnly(ed, naclRounds, 'tweetnacl'),
      },
    ];
    return {
      figures,
      sha256MbPerSecond: sha256MbPerSecond(
        ed.requests.map((r) => r.image),
        rounds,
      ),
      modules: ed.requests.map((r) => r.name),
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
