/**
 * Attack (jump-label-foreign-target): patch a 5-byte jump label (a NOP now) into a jmp to
 * commit_creds instead of the jump entry's own target.
 * Expected stop: the verifier's jump-label plugin denies ("jump to foreign target"):
 * -KVM_EPERM, a `heki-denial` exit, an audit record ok=false; the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';
import { nopJumpLabel } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('jump-label-foreign-target: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(
    t,
    'jump-label-foreign-target',
    (m) => nopJumpLabel(m.kernel!).site,
    /jump-label: jump-label site 0x[0-9a-f]+: jump to foreign target 0xffffffff810d3bc0/,
    'verifier',
  ),
);
