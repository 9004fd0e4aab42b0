/**
 * The lifecycle plugin in an in-process verifier: kexec images (a kernel-vendor-signed
 * manifest that names the image's SHA-256), a kexec'd kernel's manifest becoming the VM's,
 * and a VM's state restored only from an image a `vmm` key of the keyring signed for it.
 * Every deny path names its reason.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { PROTOCOL_VERSION, type VerifyRequest } from '../../shared/protocol.ts';
import { encodeVmImage } from '../../shared/vm-image.ts';
import { encodeSection } from '../../shared/state-section.ts';
import { VERIFIER_SECTION } from '../../verifier-vm/vm-state.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { type KeyRole } from '../../shared/keyring-data.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import type { ManifestBody } from '../../verifier-vm/manifest.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { vmImageSigner } from '../../shared/crypto/vm-image-signature.ts';
import type { ExportedVmState } from '../../verifier-vm/vm-state.ts';
import { signCodeImage } from '../../verifier-vm/signature/code-image.ts';

const vendor = generateEd25519KeyPair();
const modSigner = generateEd25519KeyPair();
const vmmKey = generateEd25519KeyPair();
const revokedVmm = generateEd25519KeyPair();
const stranger = generateEd25519KeyPair();

function keyring(): Keyring {
  const e = (k: Ed25519KeyPair, role: KeyRole) => ({ keyId: ed25519KeyIdHex(k.publicKey), role, publicKey: k.publicKey });
  const r = Keyring.fromData({
    ed25519: [e(vendor, 'kernel-vendor'), e(modSigner, 'module-signing'), e(vmmKey, 'vmm'), e(revokedVmm, 'vmm')],
    certificates: [],
    revoked: { ed25519KeyIds: [ed25519KeyIdHex(revokedVmm.publicKey)], x509Sha256: [] },
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

/** A minimal bzImage: a setup header the parser accepts and a small payload. */
function bzImage(fill: number): Uint8Array {
  const img = new Uint8Array(4096).fill(fill);
  const dv = new DataView(img.buffer);
  img[0x1f1] = 1;
  dv.setUint32(0x202, 0x53726448, true);
  dv.setUint16(0x206, 0x020f, true);
  dv.setUint32(0x248, 0, true);
  dv.setUint32(0x24c, 16, true);
  return img;
}

function manifestFor(image: Uint8Array, signer = vendor, name = 'linux-test'): string {
  const body: ManifestBody = {
    kernel: name,
    vmlinuzSha256: createHash('sha256').update(image).digest('hex'),
    sections: [],
    symbols: {},
    mcountSites: [],
    jumpEntries: [],
    exports: {},
    ftraceTrampolines: {},
    fentry: '0',
  };
  return signManifest(body, signer);
}

let nextId = 1;
function req<K extends VerifyRequest['kind']>(
  kind: K,
  fields: Omit<Extract<VerifyRequest, { kind: K }>, 'v' | 'id' | 'kind' | 'vm'>,
  vm = 'vm0',
): VerifyRequest {
  return { v: PROTOCOL_VERSION, id: nextId++, vm, kind, ...fields } as unknown as VerifyRequest;
}

function verifier(): Verifier {
  return new Verifier({ keyring: keyring(), plugins: BUILTIN_PLUGINS });
}

test('kexec-image: allowed when a kernel-vendor key signed a manifest naming the image', (t) => {
  const v = verifier();
  const image = bzImage(0x90);
  const r = v.verify(req('kexec-image', { slot: 'kexec', image, manifest: manifestFor(image) }));
  t.true(r.ok, r.reason);
  t.regex(r.reason, /^lifecycle: kexec kernel linux-test: manifest signed by kernel-vendor key [0-9a-f]{16}, image SHA-256 matches$/);
  t.deepEqual(r.plugins, ['lifecycle']);
});

test('kexec-image: every refusal names its reason', (t) => {
  const v = verifier();
  const image = bzImage(0x90);
  const reason = (image2: Uint8Array, manifest: string, slot: 'kexec' | 'crash' = 'kexec'): string => {
    const r = v.verify(req('kexec-image', { slot, image: image2, manifest }));
    t.false(r.ok);
    return r.reason;
  };
  const flipped = Uint8Array.from(image);
  flipped[3000]! ^= 1;
  t.regex(reason(flipped, manifestFor(image)), /image SHA-256 [0-9a-f]{64} differs from the manifest's vmlinuzSha256/);
  t.regex(reason(image, manifestFor(image, stranger)), /^lifecycle: kexec kernel: manifest signed by unknown key [0-9a-f]{16}$/);
  t.regex(
    reason(image, manifestFor(image, modSigner), 'crash'),
    /^lifecycle: crash kernel: manifest key [0-9a-f]{16} has role module-signing, not kernel-vendor$/,
  );
  const m = manifestFor(image);
  const i = m.indexOf('linux-test');
  t.regex(reason(image, m.slice(0, i) + 'L' + m.slice(i + 1)), /manifest signature does not match its body/);
  t.regex(reason(image, '{'), /manifest is not JSON/);
  const notBz = new Uint8Array(4096);
  t.regex(reason(notBz, manifestFor(notBz)), /^lifecycle: kexec kernel: the image is not a kernel: bzImage: bad magic/);
});

test("kernel-manifest: the kexec kernel's manifest becomes that VM's, and only that VM's", (t) => {
  const v = verifier();
  const text = manifestFor(bzImage(1), vendor, 'linux-kexec');
  t.true(v.verify(req('kernel-manifest', { manifest: text })).ok);
  t.is(v.exportVm('vm0')?.manifest, text);
  t.is(v.vmState('vm1').kernel, undefined);
  const bad = v.verify(req('kernel-manifest', { manifest: manifestFor(bzImage(1), stranger) }, 'vm1'));
  t.false(bad.ok);
  t.is(v.vmState('vm1').kernel, undefined);
  v.resetVm('vm0');
  t.is(v.exportVm('vm0'), undefined, 'a reset forgets it');
});

/** A VM state with one verified code image, exported from a verifier. */
function exportedState(): ExportedVmState {
  const v = verifier();
  const image = Uint8Array.of(0x55, 0xc3);
  const addr = 0xffffffffc0010000n;
  const keyId = ed25519KeyIdHex(modSigner.publicKey);
  const r = v.verify(
    req('code-load', { what: 'bpf-jit', name: 'p', addr, image, signature: signCodeImage(image, { what: 'bpf-jit', addr }, modSigner), keyId }),
  );
  if (!r.ok) throw new Error(r.reason);
  v.verify(req('kernel-manifest', { manifest: manifestFor(bzImage(2)) }));
  const s = v.exportVm('vm0');
  if (!s) throw new Error('no state');
  return s;
}

function stateImage(state: unknown, opts: { key?: Ed25519KeyPair; vm?: string; extra?: boolean } = {}): Uint8Array {
  const sections = [
    { name: 'core', bytes: new TextEncoder().encode('{}') },
    ...(state === undefined
      ? []
      : [{ name: 'verifier', bytes: state instanceof Uint8Array ? state : encodeSection(VERIFIER_SECTION, state as ExportedVmState) }]),
  ];
  return encodeVmImage({ kind: 'hibernate', vm: opts.vm ?? 'vm0', vmId: 'ab'.repeat(16) }, sections, vmImageSigner(opts.key ?? vmmKey));
}

test('restore-state: a vmm-signed image of this VM brings its verifier state back', (t) => {
  const state = exportedState();
  const v = verifier();
  const r = v.verify(req('restore-state', { image: stateImage(state) }));
  t.true(r.ok, r.reason);
  t.regex(r.reason, /^lifecycle: hibernate image of VM vm0 \(abab.*\) signed by vmm key [0-9a-f]{16} on .*: 0 module\(s\), boot not verified$/);
  const back = v.exportVm('vm0');
  t.deepEqual([...back!.codeImages.keys()], [...state.codeImages.keys()]);
  t.is(back!.manifest, state.manifest);
  t.truthy(v.vmState('vm0').kernel, "the kexec kernel's manifest, checked again, is the VM's again");
});

test("restore-state: refused unless a trusted vmm key signed this VM's unmodified image", (t) => {
  const state = exportedState();
  const v = verifier();
  const reason = (image: Uint8Array, vm = 'vm0'): string => {
    const r = v.verify(req('restore-state', { image }, vm));
    t.false(r.ok);
    t.is(v.exportVm(vm)?.codeImages.size ?? 0, 0, 'nothing is taken back');
    return r.reason;
  };
  t.regex(reason(stateImage(state, { key: stranger })), /state image: signed by key [0-9a-f]{16}, which the keyring does not hold/);
  t.regex(reason(stateImage(state, { key: modSigner })), /state image: key [0-9a-f]{16} has role module-signing, not vmm/);
  t.regex(reason(stateImage(state, { key: revokedVmm })), /state image: key [0-9a-f]{16} is revoked/);
  t.regex(reason(stateImage(state), 'vm1'), /state image: the image is of VM 'vm0', not 'vm1'/);
  const flipped = stateImage(state);
  flipped[flipped.length - 10]! ^= 1;
  t.regex(reason(flipped), /state image: section verifier: SHA-256 .* differs from the signed .*: the image was modified after it was signed/);
  t.regex(reason(stateImage(undefined)), /state image: it has no verifier section/);
  const raw = (data: unknown, version = 1) => new TextEncoder().encode(JSON.stringify({ section: 'verifier', version, data }));
  t.regex(reason(stateImage(raw({ version: 1, bootVerified: 'yes' }))), /verifier section: data\.bootVerified must be a boolean/);
  t.regex(reason(stateImage(raw(null))), /verifier section: the source verifier held no state for the VM/);
  t.regex(reason(stateImage(raw({}, 9))), /verifier section: schema version 9 is not 1/);
  t.regex(reason(stateImage({ ...state, manifest: manifestFor(bzImage(3), stranger) })), /the VM's kernel manifest: manifest signed by unknown key/);
  t.regex(reason(Uint8Array.of(1, 2, 3)), /state image: 3 bytes is too short/);
});

test('the lifecycle request kinds are shape-checked before any plugin sees them', (t) => {
  const v = verifier();
  const bad = (msg: Record<string, unknown>): string => {
    const r = v.verify({ v: PROTOCOL_VERSION, id: 99, vm: 'vm0', ...msg });
    t.false(r.ok);
    return r.reason;
  };
  t.is(bad({ kind: 'kexec-image', slot: 'other', image: new Uint8Array(1), manifest: '' }), 'malformed request: request.slot must be one of kexec, crash');
  t.is(bad({ kind: 'kexec-image', slot: 'kexec', image: [1, 2], manifest: '' }), 'malformed request: request.image must be a Uint8Array');
  t.is(bad({ kind: 'kernel-manifest', manifest: 7 }), `malformed request: request.manifest must be a string of at most ${16 << 20} characters`);
  t.is(bad({ kind: 'restore-state' }), 'malformed request: request.image must be a Uint8Array');
});
