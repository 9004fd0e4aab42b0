/**
 * The kernel-text plugin (verifier-vm/plugins/kernel-text.ts): the end-of-boot comparison of
 * the kernel's sections with the signed manifest, and the bootVerified flag its commit sets.
 */
import test from 'ava';
import { NOP5, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import { PROTOCOL_VERSION, type RequestOf } from '../../shared/protocol.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { kernelTextPlugin } from '../../verifier-vm/plugins/kernel-text.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { K, context, item, patchRequest, sectionBytes, syntheticManifest } from './plugin-synthetic.ts';

type Section = RequestOf<'kernel-text'>['sections'][number];

function sections(): Section[] {
  return [
    { name: '.text', addr: K.text, bytes: sectionBytes('.text', K.textSize) },
    { name: '.rodata', addr: K.rodata, bytes: sectionBytes('.rodata', K.rodataSize) },
    { name: '.init.text', addr: K.initText, bytes: sectionBytes('.init.text', K.initTextSize) },
  ];
}

const flip = (b: Uint8Array, i: number): void => {
  b[i] = b[i]! ^ 0xff;
};

let nextId = 1;
const request = (s: Section[]): RequestOf<'kernel-text'> => ({ v: PROTOCOL_VERSION, id: nextId++, vm: 'vm0', kind: 'kernel-text', sections: s });
const decide = (s: Section[], ctx = context()) => kernelTextPlugin.decide(request(s), ctx);

test('allows sections that match the manifest, in any order, ignoring extra sections', (t) => {
  const r = decide([...sections().reverse(), { name: '.bss', addr: 0xffffffff83310000n, bytes: new Uint8Array(16) }]);
  t.deepEqual(r, { decision: 'allow', reason: '3 sections match the manifest of synthetic (key 0123456789abcdef)' });
});

test('denies a missing or duplicated section', (t) => {
  t.deepEqual(decide(sections().filter((s) => s.name !== '.rodata')), { decision: 'deny', reason: 'section .rodata is missing from the request' });
  t.deepEqual(decide([...sections(), sections()[0]!]), { decision: 'deny', reason: 'section .text appears 2 times in the request' });
});

test('denies a section at another address or of another size', (t) => {
  const s = sections();
  s[1] = { ...s[1]!, addr: K.rodata + 0x1000n };
  t.deepEqual(decide(s), { decision: 'deny', reason: 'section .rodata is at 0xffffffff82001000, the manifest says 0xffffffff82000000' });
  const short = sections();
  short[0] = { ...short[0]!, bytes: short[0]!.bytes.subarray(1) };
  t.deepEqual(decide(short), { decision: 'deny', reason: 'section .text is 65535 bytes, the manifest says 65536' });
});

test('denies changed content, naming the first mismatching section in manifest order', (t) => {
  const s = sections();
  flip(s[2]!.bytes, 100);
  flip(s[1]!.bytes, 7);
  const r = decide(s);
  t.is(r.decision, 'deny');
  t.regex(r.reason, /^section \.rodata at 0xffffffff82000000 differs from the manifest \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\)$/);
});

test('denies without a manifest', (t) => {
  t.deepEqual(decide(sections(), context({ manifest: undefined })), { decision: 'deny', reason: 'no kernel manifest loaded' });
});

test('through the Verifier: a passing check sets bootVerified, a failing one does not; init text stops being patchable', (t) => {
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest: syntheticManifest() });
  const bad = sections();
  flip(bad[0]!.bytes, 0);
  const no = v.verify(request(bad));
  t.false(no.ok);
  t.regex(no.reason, /^kernel-text: section \.text at 0xffffffff81000000 differs/);
  t.false(v.vmState('vm0').bootVerified);

  const initPatch = () => v.verify(patchRequest([item('ftrace', K.initMcount, [...NOP5], encodeCall32(K.initMcount, K.ftraceCaller))]));
  t.true(initPatch().ok, 'during boot');
  const yes = v.verify(request(sections()));
  t.true(yes.ok, yes.reason);
  t.deepEqual(yes.plugins, ['kernel-text']);
  t.true(v.vmState('vm0').bootVerified);
  t.false(v.vmState('other-vm').bootVerified, 'per VM');
  t.false(initPatch().ok, 'after boot');
});
