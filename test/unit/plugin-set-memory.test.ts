/**
 * The set-memory plugin (verifier-vm/plugins/set-memory.ts): W^X, IMMUTABLE, removing and
 * adding permissions, and EXEC only for page contents that match verified module text or a
 * verified code image; per-range verdicts through the Verifier.
 */
import test from 'ava';
import { MEM_ATTR } from '../../shared/abi.ts';
import type { SetMemoryRange } from '../../shared/protocol.ts';
import { setMemoryPlugin } from '../../verifier-vm/plugins/set-memory.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { codeImagePageHashes } from '../../verifier-vm/signature/code-image.ts';
import { MOD, context, freshVm, modulePage, setMemoryRequest, sha256, syntheticModule } from './plugin-synthetic.ts';

const { READ: R, WRITE: W, EXEC: X, IMMUTABLE: I, EXEC_USER: XU } = MEM_ATTR;

function range(addr: bigint, current: number[], requested: number, pageHashes?: string[]): SetMemoryRange {
  return { addr, frames: current.map((_, i) => 0x1000 + i), current, requested, pageHashes: pageHashes ?? current.map(() => '00'.repeat(32)) };
}

function vmWithModule() {
  const vm = freshVm();
  vm.modules.set(MOD.name, syntheticModule());
  return vm;
}

function decide(r: SetMemoryRange, vm = freshVm()) {
  return setMemoryPlugin.decide(setMemoryRequest([r]), context({ vm })).items![0]!;
}

const DATA = 0xffffc90000100000n;

test('W^X: WRITE with EXEC or EXEC_USER is refused whatever the pages hold', (t) => {
  const r = decide(range(MOD.text, [R | X], R | W | X, [sha256(modulePage(0))]), vmWithModule());
  t.deepEqual(r, { decision: 'deny', reason: `W^X: range at 0xffffffffc0000000 asks for RWX--, writable and executable` });
  t.regex(decide(range(DATA, [R | W], R | W | XU)).reason, /^W\^X: .* asks for RW-U-/);
});

test('IMMUTABLE pages only "change" to exactly their current bits', (t) => {
  t.is(decide(range(DATA, [R | I, R | I], R | I)).decision, 'allow');
  const r = decide(range(DATA, [R | I], R));
  t.deepEqual(r, { decision: 'deny', reason: 'page 0xffffc90000100000 is immutable (R---I) and cannot change to R----' });
  t.regex(decide(range(DATA, [R, R | X | I], R)).reason, /page 0xffffc90000101000 is immutable \(R-X-I\)/);
});

test('taking permissions away is allowed on any page', (t) => {
  t.deepEqual(decide(range(DATA, [R | X, R | W], R)), { decision: 'allow', reason: 'range at 0xffffc90000100000 (2 pages) -> R----, no permission added' });
  t.is(decide(range(DATA, [R | X], 0)).decision, 'allow');
});

test('adding WRITE to non-executable pages is allowed (data), also when EXEC is dropped at once', (t) => {
  t.deepEqual(decide(range(DATA, [R], R | W)), { decision: 'allow', reason: 'range at 0xffffc90000100000 (1 page) -> RW---' });
  t.is(decide(range(DATA, [R | X], R | W)).decision, 'allow');
  t.is(decide(range(DATA, [R], R | I)).decision, 'allow', 'adding IMMUTABLE only restricts');
});

test('adding EXEC to a page nobody verified is refused', (t) => {
  const r = decide(range(DATA, [R], R | X));
  t.deepEqual(r, {
    decision: 'deny',
    reason: 'executable permission for unauthenticated content at 0xffffc90000100000: no verified module text or code image covers it',
  });
  t.regex(decide(range(DATA, [R | X], R | X | XU)).reason, /executable permission for unauthenticated content/, 'EXEC_USER counts as EXEC');
});

test('adding EXEC to verified module text needs the page hash recorded at verification', (t) => {
  const vm = vmWithModule();
  const good = [sha256(modulePage(0)), sha256(modulePage(1))];
  t.is(decide(range(MOD.text, [R, R], R | X, good), vm).decision, 'allow');
  t.is(
    decide(
      range(
        MOD.text,
        [R, R],
        R | X,
        good.map((s) => s.toUpperCase()),
      ),
      vm,
    ).decision,
    'allow',
    'hex case does not matter',
  );
  const tampered = decide(range(MOD.text, [R, R], R | X, [good[0]!, sha256(modulePage(7))]), vm);
  t.deepEqual(tampered, {
    decision: 'deny',
    reason: 'executable permission for unauthenticated content at 0xffffffffc0001000: page hash differs from the verified module synth_mod',
  });
  // One page past the module's text: not covered.
  const past = decide(range(MOD.text + 0x1000n, [R, R], R | X, [good[1]!, good[1]!]), vm);
  t.regex(past.reason, /unauthenticated content at 0xffffffffc0002000: no verified module text/);
  // After the module is unloaded its hashes no longer count.
  vm.modules.clear();
  t.is(decide(range(MOD.text, [R, R], R | X, good), vm).decision, 'deny');
});

test('adding EXEC to a verified code image needs its page hashes', (t) => {
  const vm = freshVm();
  const addr = 0xffffffffa0000000n;
  const image = Uint8Array.from({ length: 5000 }, (_, i) => (i * 3) & 0xff);
  const hashes = codeImagePageHashes(addr, image);
  vm.codeImages.set(addr, { end: addr + 5000n, name: 'bpf-jit:prog', sha256: sha256(image), pageHashes: hashes });
  const page1 = new Uint8Array(4096);
  page1.set(image.subarray(4096));
  t.is(hashes.get(addr + 0x1000n), sha256(page1), 'the last page is hashed zero-padded');
  t.is(decide(range(addr, [R, R], R | X, [...hashes.values()]), vm).decision, 'allow');
  t.regex(
    decide(range(addr, [R, R], R | X, [hashes.get(addr)!, sha256(new Uint8Array(4096))]), vm).reason,
    /differs from the verified code image bpf-jit:prog/,
  );
});

test('malformed ranges: unaligned, empty, unknown bits', (t) => {
  t.deepEqual(decide(range(DATA + 8n, [R], R)), { decision: 'deny', reason: 'range address 0xffffc90000100008 is not page-aligned' });
  t.deepEqual(decide(range(DATA, [], R)), { decision: 'deny', reason: 'range at 0xffffc90000100000 has no pages' });
  t.regex(decide(range(DATA, [R], R | 0x20)).reason, /requested bits 0x21 include unknown attributes/);
  t.regex(decide(range(0xfffffffffffff000n, [R, R], R)).reason, /wraps the address space/);
});

test('through the Verifier: each range is decided on its own; one bad range fails the verdict', (t) => {
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS });
  v.vmState('vm0').modules.set(MOD.name, syntheticModule());
  const verdict = v.verify(setMemoryRequest([range(MOD.text, [R], R | X, [sha256(modulePage(0))]), range(DATA, [R | W], R | W | X), range(DATA, [R | W], R)]));
  t.false(verdict.ok);
  t.deepEqual(
    verdict.items!.map((i) => i.ok),
    [true, false, true],
  );
  t.regex(verdict.items![1]!.reason, /^set-memory: W\^X/);
  t.regex(verdict.reason, /^1 of 3 items denied; first: set-memory: W\^X/);
  t.true(v.verify(setMemoryRequest([range(DATA, [R | W], R)])).ok);
});
