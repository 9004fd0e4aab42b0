import test from 'ava';
import { forgedGfn } from '../helpers/forged-addr.ts';
import { gfn } from '../../shared/addr.ts';
import { Ept } from '../../hypervisor/ept/ept.ts';
import {
  EPT_DEFAULT,
  EPT_FROZEN,
  EPT_IMMUTABLE,
  EPT_R,
  EPT_W,
  EPT_XS,
  EPT_XU,
  eptString,
  eptToMemAttr,
  memAttrToEpt,
  accessMask,
  permits,
  permitsMask,
} from '../../hypervisor/ept/permissions.ts';
import { MEM_ATTR } from '../../shared/abi.ts';

test('unlocked frames are RWX for both modes (Heki v2 default)', (t) => {
  const ept = new Ept(1 << 20);
  t.is(ept.get(gfn(12345)), EPT_DEFAULT);
  for (const access of ['read', 'write', 'fetch'] as const) {
    t.true(ept.allows(gfn(12345), access, 'kernel'));
    t.true(ept.allows(gfn(12345), access, 'user'));
  }
  t.deepEqual(ept.entries(), []);
});

test('each permission bit gates exactly its access; MBEC splits execute by mode', (t) => {
  const ept = new Ept(16);
  ept.set(gfn(1), EPT_R);
  t.true(ept.allows(gfn(1), 'read', 'kernel'));
  t.false(ept.allows(gfn(1), 'write', 'kernel'));
  t.false(ept.allows(gfn(1), 'fetch', 'kernel'));
  ept.set(gfn(2), EPT_R | EPT_XS);
  t.true(ept.allows(gfn(2), 'fetch', 'kernel'));
  t.false(ept.allows(gfn(2), 'fetch', 'user'));
  ept.set(gfn(3), EPT_R | EPT_XU);
  t.false(ept.allows(gfn(3), 'fetch', 'kernel'));
  t.true(ept.allows(gfn(3), 'fetch', 'user'));
});

test('a frozen frame refuses writes and keeps its other permissions', (t) => {
  const ept = new Ept(16);
  ept.set(gfn(5), EPT_R | EPT_W);
  ept.freeze(gfn(5));
  t.false(ept.allows(gfn(5), 'write', 'kernel'));
  t.true(ept.allows(gfn(5), 'read', 'kernel'));
  ept.thaw(gfn(5));
  t.true(ept.allows(gfn(5), 'write', 'kernel'));
  t.is(ept.get(gfn(5)), EPT_R | EPT_W);
});

test('frames outside guest memory have no permissions and cannot be set', (t) => {
  const ept = new Ept(16);
  t.is(ept.get(gfn(16)), 0);
  t.false(ept.allows(gfn(16), 'read', 'kernel'));
  t.throws(() => ept.set(gfn(16), EPT_R), { instanceOf: RangeError });
});

test('entries lists changed frames in order and the generation counts changes', (t) => {
  const ept = new Ept(4096);
  const g0 = ept.generation;
  ept.set(gfn(1000), EPT_R);
  ept.set(gfn(3), EPT_R | EPT_XS | EPT_IMMUTABLE);
  ept.set(gfn(1000), EPT_R); // no change
  t.deepEqual(ept.entries(), [
    [3, EPT_R | EPT_XS | EPT_IMMUTABLE],
    [1000, EPT_R],
  ]);
  t.is(ept.generation, g0 + 2);
  t.true(ept.isImmutable(gfn(3)));
  ept.reset();
  t.deepEqual(ept.entries(), []);
});

test('MEM_ATTR and EPT bits convert both ways', (t) => {
  const all = MEM_ATTR.READ | MEM_ATTR.WRITE | MEM_ATTR.EXEC | MEM_ATTR.EXEC_USER | MEM_ATTR.IMMUTABLE;
  t.is(memAttrToEpt(all), EPT_R | EPT_W | EPT_XS | EPT_XU | EPT_IMMUTABLE);
  t.is(eptToMemAttr(memAttrToEpt(all)), all);
  t.is(eptToMemAttr(EPT_R | EPT_FROZEN), MEM_ATTR.READ);
  t.is(eptString(EPT_R | EPT_XS | EPT_IMMUTABLE), 'R-X-I-');
});

test('the mask form of a check (the vCPU hot path) answers exactly as permits() for every permission byte and access', (t) => {
  const ept = new Ept(64 + 8);
  for (let perms = 0; perms < 64; perms++) ept.set(gfn(perms), perms);
  for (const access of ['read', 'write', 'fetch'] as const) {
    for (const mode of ['kernel', 'user'] as const) {
      const m = accessMask(access, mode);
      for (let perms = 0; perms < 64; perms++) {
        const want = permits(perms, access, mode);
        t.is(permitsMask(perms, m), want, `perms ${perms} ${mode} ${access}`);
        t.is(ept.check(gfn(perms), m), want, `Ept.check frame with perms ${perms} ${mode} ${access}`);
        t.is(ept.allows(gfn(perms), access, mode), want, `Ept.allows frame with perms ${perms} ${mode} ${access}`);
      }
      // Frames outside guest memory allow nothing, in both forms.
      for (const frame of [-1, 72, 1e9, Number.NaN]) {
        t.false(ept.check(forgedGfn(frame), m), `frame ${frame}`);
        t.false(ept.allows(forgedGfn(frame), access, mode), `frame ${frame}`);
      }
    }
  }
  // A FROZEN page refuses writes only; an untouched frame is the default RWX.
  t.false(ept.check(gfn(EPT_R | EPT_W | EPT_FROZEN), accessMask('write', 'kernel')));
  t.true(ept.check(gfn(EPT_R | EPT_W | EPT_FROZEN), accessMask('read', 'kernel')));
  t.true(ept.check(gfn(66), accessMask('fetch', 'user')));
});
