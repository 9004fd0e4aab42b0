/**
 * code-load: decides `code-load` requests (eBPF JIT images, trampolines): executable code
 * that is not a module and so carries its own detached signature.
 *
 * Allowed when the image is non-empty; `addr` is page-aligned and the image does not wrap the
 * address space; `keyId` names an Ed25519 key of the keyring whose role is `module-signing`
 * or `kernel-vendor` and which is not revoked; and the 64-byte signature verifies over
 * `"heki-sim code image v1\0" || SHA-256(image)` (see ../signature/code-image.ts).
 *
 * On an allowed verdict, `commit` records the image in `ctx.vm.codeImages` by its address,
 * with the SHA-256 of every 4 KiB page it occupies (tail of the last page as zeros), so that
 * set-memory can later grant EXEC to exactly these page contents. A later image at the same
 * address replaces the record.
 */
import { hex, isPageAligned } from '../../shared/addr.ts';
import type { RequestOf } from '../../shared/protocol.ts';
import type { PluginContext, PluginResult, VerifierPlugin } from '../plugin-api.ts';
import { isKeyIdHex } from '../keyring.ts';
import { ED25519_SIGNATURE_LEN } from '../../shared/crypto/ed25519.ts';
import { codeImagePageHashes, sha256Hex, verifyCodeImageSignature } from '../signature/code-image.ts';

export { codeImageSignatureMessage, signCodeImage, codeImagePageHashes, CODE_IMAGE_SIGNATURE_DOMAIN, type CodePlacement } from '../signature/code-image.ts';

const U64_END = 1n << 64n;

/** Decides one code-load request. Exported for tests and for plugins that wrap this policy. */
export function checkCodeLoad(request: RequestOf<'code-load'>, ctx: PluginContext): PluginResult {
  const what = `${request.what} ${JSON.stringify(request.name)}`;
  const deny = (reason: string): PluginResult => ({ decision: 'deny', reason: `${what}: ${reason}` });
  const { image, addr, keyId, signature } = request;
  if (image.length === 0) return deny('image is empty');
  if (!isPageAligned(addr)) return deny(`address ${hex(addr)} is not page-aligned`);
  if (addr + BigInt(image.length) > U64_END) return deny(`image of ${image.length} bytes at ${hex(addr)} wraps the address space`);
  if (!isKeyIdHex(keyId)) return deny(`key id ${JSON.stringify(keyId)} is not 16 lowercase hex digits`);
  const key = ctx.keyring.ed25519Key(keyId);
  if (!key) return deny(`signed by unknown key ${keyId}`);
  if (key.role !== 'module-signing' && key.role !== 'kernel-vendor') return deny(`key ${keyId} has role ${String(key.role)}, which may not sign code`);
  if (ctx.keyring.isKeyRevoked(keyId)) return deny(`key ${keyId} is revoked`);
  if (signature.length !== ED25519_SIGNATURE_LEN) return deny(`signature is ${signature.length} bytes, not ${ED25519_SIGNATURE_LEN}`);
  if (!verifyCodeImageSignature(image, { what: request.what, addr }, signature, key.publicKey))
    return deny(`signature does not match the image at this address (key ${keyId})`);
  return { decision: 'allow', reason: `${what} at ${hex(addr)} (${image.length} bytes) signed by ${key.role} key ${keyId}` };
}

/** The code-load plugin. */
export const codeLoadPlugin: VerifierPlugin<'code-load'> = {
  name: 'code-load',
  description:
    'allows eBPF JIT images and trampolines signed (Ed25519) by a module-signing or kernel-vendor key that is not revoked, and records their page hashes',
  kinds: ['code-load'],
  decide(request, ctx) {
    return checkCodeLoad(request, ctx);
  },
  commit(request, ok, ctx) {
    if (!ok) return;
    const end = request.addr + BigInt(request.image.length);
    // ok means no plugin denied, so this plugin's decide allowed: addr page-aligned, image
    // non-empty and in range. Checked again so a broken invariant records nothing.
    if (!isPageAligned(request.addr) || end <= request.addr || end > U64_END) return;
    ctx.vm.codeImages.set(request.addr, {
      end,
      name: `${request.what}:${request.name}`,
      sha256: sha256Hex(request.image),
      pageHashes: codeImagePageHashes(request.addr, request.image),
    });
  },
};
