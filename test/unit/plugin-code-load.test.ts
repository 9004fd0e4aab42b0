/**
 * The code-load plugin (verifier-vm/plugins/code-load.ts) and code image signatures
 * (verifier-vm/signature/code-image.ts): Ed25519 over "heki-sim code image v1\0" ||
 * SHA-256(image) by a module-signing or kernel-vendor key; every deny path; the record commit
 * leaves, which set-memory then uses to grant EXEC.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { MEM_ATTR } from '../../shared/abi.ts';
import { PROTOCOL_VERSION, type RequestOf } from '../../shared/protocol.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { codeImageSignatureMessage, codeLoadPlugin, signCodeImage } from '../../verifier-vm/plugins/code-load.ts';
import { codeImagePageHashes } from '../../verifier-vm/signature/code-image.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair, moduleSignatureMessage, signEd25519, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { context, keyringOf, setMemoryRequest, sha256 } from './plugin-synthetic.ts';

const ADDR = 0xffffffffa0001000n;
const image = Uint8Array.from({ length: 6000 }, (_, i) => (i * 17 + 3) & 0xff);
const signer = generateEd25519KeyPair();
const vendor = generateEd25519KeyPair();
const revoked = generateEd25519KeyPair();
const stranger = generateEd25519KeyPair();
const id = (kp: Ed25519KeyPair) => ed25519KeyIdHex(kp.publicKey);
const keyring = keyringOf({
  ed25519: [
    { keyId: id(signer), role: 'module-signing', publicKey: signer.publicKey },
    { keyId: id(vendor), role: 'kernel-vendor', publicKey: vendor.publicKey },
    { keyId: id(revoked), role: 'module-signing', publicKey: revoked.publicKey },
  ],
  revoked: [id(revoked)],
});

let nextId = 1;
function request(over: Partial<RequestOf<'code-load'>> = {}, kp: Ed25519KeyPair = signer): RequestOf<'code-load'> {
  const img = over.image ?? image;
  const placement = { what: over.what ?? ('bpf-jit' as const), addr: over.addr ?? ADDR };
  return {
    v: PROTOCOL_VERSION,
    id: nextId++,
    vm: 'vm0',
    kind: 'code-load',
    what: 'bpf-jit',
    name: 'prog1',
    addr: ADDR,
    image: img,
    signature: signCodeImage(img, placement, kp),
    keyId: id(kp),
    ...over,
  };
}

const decide = (r: RequestOf<'code-load'>) => codeLoadPlugin.decide(r, context({ keyring }));

test('the signed message is the domain string then SHA-256 of what, the address and the image', (t) => {
  const msg = codeImageSignatureMessage(image, { what: 'bpf-jit', addr: ADDR });
  const domain = Buffer.from('heki-sim code image v1\0');
  const head = Buffer.alloc(9);
  head.writeBigUInt64LE(ADDR, 1);
  t.is(msg.length, domain.length + 32);
  t.deepEqual(Buffer.from(msg.subarray(0, domain.length)), domain);
  t.deepEqual(Buffer.from(msg.subarray(domain.length)), createHash('sha256').update(head).update(image).digest());
});

test('a signed image moved to another address, or relabelled, does not verify', (t) => {
  const signed = request();
  const moved = decide({ ...signed, addr: ADDR + 0x1000n });
  t.is(moved.decision, 'deny');
  t.regex(moved.reason, /signature does not match the image at this address/);
  t.is(decide({ ...signed, what: 'trampoline' }).decision, 'deny');
});

test('allows an image signed by a module-signing or kernel-vendor key', (t) => {
  const a = decide(request());
  t.is(a.decision, 'allow');
  t.is(a.reason, `bpf-jit "prog1" at 0xffffffffa0001000 (6000 bytes) signed by module-signing key ${id(signer)}`);
  const b = decide(request({ what: 'trampoline', name: 'ftrace_tramp' }, vendor));
  t.is(b.decision, 'allow');
  t.regex(b.reason, /^trampoline "ftrace_tramp" .* signed by kernel-vendor key/);
});

test('denies unknown and revoked keys', (t) => {
  t.deepEqual(decide(request({}, stranger)), { decision: 'deny', reason: `bpf-jit "prog1": signed by unknown key ${id(stranger)}` });
  t.deepEqual(decide(request({}, revoked)), { decision: 'deny', reason: `bpf-jit "prog1": key ${id(revoked)} is revoked` });
});

test('denies a signature that does not match: changed image, other signer, module-signature domain', (t) => {
  const r = request();
  const changed = Uint8Array.from(image);
  changed[100] = changed[100]! ^ 1;
  t.deepEqual(decide({ ...r, image: changed }), {
    decision: 'deny',
    reason: `bpf-jit "prog1": signature does not match the image at this address (key ${id(signer)})`,
  });
  t.regex(decide({ ...request({}, stranger), keyId: id(signer) }).reason, /signature does not match the image/);
  // A module signature over the same bytes is not a code image signature.
  const moduleSig = signEd25519(moduleSignatureMessage(image), signer.secretKey);
  t.regex(decide({ ...r, signature: moduleSig }).reason, /signature does not match the image/);
});

test('denies an empty image, an unaligned address, a short signature, a malformed key id', (t) => {
  t.deepEqual(decide(request({ image: new Uint8Array(0) })), { decision: 'deny', reason: 'bpf-jit "prog1": image is empty' });
  t.deepEqual(decide(request({ addr: ADDR + 0x10n })), { decision: 'deny', reason: 'bpf-jit "prog1": address 0xffffffffa0001010 is not page-aligned' });
  t.regex(decide({ ...request(), signature: new Uint8Array(63) }).reason, /signature is 63 bytes, not 64/);
  t.regex(decide({ ...request(), keyId: 'ABCDEF0123456789' }).reason, /key id "ABCDEF0123456789" is not 16 lowercase hex digits/);
  t.regex(decide(request({ addr: 0xfffffffffffff000n })).reason, /wraps the address space/);
});

test('through the Verifier: an allowed image is recorded with its page hashes, and set-memory then grants EXEC', (t) => {
  const v = new Verifier({ keyring, plugins: BUILTIN_PLUGINS });
  const verdict = v.verify(request());
  t.true(verdict.ok, verdict.reason);
  t.deepEqual(verdict.plugins, ['code-load']);
  const rec = v.vmState('vm0').codeImages.get(ADDR);
  t.truthy(rec);
  t.is(rec!.end, ADDR + 6000n);
  t.is(rec!.name, 'bpf-jit:prog1');
  t.is(rec!.sha256, sha256(image));
  t.deepEqual([...rec!.pageHashes], [...codeImagePageHashes(ADDR, image)]);
  t.is(rec!.pageHashes.size, 2);

  const hashes = [...rec!.pageHashes.values()];
  const R = MEM_ATTR.READ;
  const X = MEM_ATTR.EXEC;
  const frames = [0x2000, 0x2001];
  t.true(v.verify(setMemoryRequest([{ addr: ADDR, frames, current: [R, R], requested: R | X, pageHashes: hashes }])).ok);
  t.false(v.verify(setMemoryRequest([{ addr: ADDR, frames, current: [R, R], requested: R | X, pageHashes: [hashes[0]!, sha256(new Uint8Array(4096))] }])).ok);

  // A denied image leaves no record.
  const bad = v.verify({ ...request({ addr: 0xffffffffa0100000n }, stranger) });
  t.false(bad.ok);
  t.regex(bad.reason, /^code-load: bpf-jit "prog1": signed by unknown key/);
  t.false(v.vmState('vm0').codeImages.has(0xffffffffa0100000n));
});
