import test from 'ava';
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
  t.is(ept.get(12345), EPT_DEFAULT);
  for (const access of ['read', 'write', 'fetch'] as const) {
    t.true(ept.allows(12345, access, 'kernel'));
    t.true(ept.allows(12345, access, 'user'));
  }
  t.deepEqual(ept.entries(), []);
});

test('each permission bit gates exactly its access; MBEC splits execute by mode', (t) => {
  const ept = new Ept(16);
  ept.set(1, EPT_R);
  t.true(ept.allows(1, 'read', 'kernel'));
  t.false(ept.allows(1, 'write', 'kernel'));
  t.false(ept.allows(1, 'fetch', 'kernel'));
  ept.set(2, EPT_R | EPT_XS);
  t.true(ept.allows(2, 'fetch', 'kernel'));
  t.false(ept.allows(2, 'fetch', 'user'));
  ept.set(3, EPT_R | EPT_XU);
  t.false(ept.allows(3, 'fetch', 'kernel'));
  t.true(ept.allows(3, 'fetch', 'user'));
});

test('a frozen frame refuses writes and keeps its other permissions', (t) => {
  const ept = new Ept(16);
  ept.set(5, EPT_R | EPT_W);
  ept.freeze(5);
  t.false(ept.allows(5, 'write', 'kernel'));
  t.true(ept.allows(5, 'read', 'kernel'));
  ept.thaw(5);
  t.true(ept.allows(5, 'write', 'kernel'));
  t.is(ept.get(5), EPT_R | EPT_W);
});

test('frames outside guest memory have no permissions and cannot be set', (t) => {
  const ept = new Ept(16);
  t.is(ept.get(16), 0);
  t.false(ept.allows(16, 'read', 'kernel'));
  t.throws(() => ept.set(16, EPT_R), { instanceOf: RangeError });
});

test('entries lists changed frames in order and the generation counts changes', (t) => {
  const ept = new Ept(4096);
  const g0 = ept.generation;
  ept.set(1000, EPT_R);
  ept.set(3, EPT_R | EPT_XS | EPT_IMMUTABLE);
  ept.set(1000, EPT_R); // no change
  t.deepEqual(ept.entries(), [
    [3, EPT_R | EPT_XS | EPT_IMMUTABLE],
    [1000, EPT_R],
  ]);
  t.is(ept.generation, g0 + 2);
  t.true(ept.isImmutable(3));
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
  for (let perms = 0; perms < 64; perms++) ept.set(perms, perms);
  for (const access of ['read', 'write', 'fetch'] as const) {
    for (const mode of ['kernel', 'user'] as const) {
      const m = accessMask(access, mode);
      for (let perms = 0; perms < 64; perms++) {
        const want = permits(perms, access, mode);
        t.is(permitsMask(perms, m), want, `perms ${perms} ${mode} ${access}`);
        t.is(ept.check(perms, m), want, `Ept.check frame with perms ${perms} ${mode} ${access}`);
        t.is(ept.allows(perms, access, mode), want, `Ept.allows frame with perms ${perms} ${mode} ${access}`);
      }
      // Frames outside guest memory allow nothing, in both forms.
      for (const frame of [-1, 72, 1e9, Number.NaN]) {
        t.false(ept.check(frame, m), `frame ${frame}`);
        t.false(ept.allows(frame, access, mode), `frame ${frame}`);
      }
    }
  }
  // A FROZEN page refuses writes only; an untouched frame is the default RWX.
  t.false(ept.check(EPT_R | EPT_W | EPT_FROZEN, accessMask('write', 'kernel')));
  t.true(ept.check(EPT_R | EPT_W | EPT_FROZEN, accessMask('read', 'kernel')));
  t.true(ept.check(66, accessMask('fetch', 'user')));
});
