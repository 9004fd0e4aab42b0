/**
 * Attack (ftrace-wrong-old-bytes): ask to patch commit_creds's ftrace site claiming it holds a
 * call to __fentry__ when it holds the 5-byte NOP.
 * Expected stop: the verifier's ftrace plugin denies ("old bytes differ from memory"):
 * -KVM_EPERM, a `heki-denial` exit, an audit record ok=false; the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';
import { ftraceSiteOf } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('ftrace-wrong-old-bytes: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(
    t,
    'ftrace-wrong-old-bytes',
    (m) => ftraceSiteOf(m.kernel!, 'commit_creds'),
    /ftrace: old bytes differ from memory at 0x[0-9a-f]+ \(old e8 [0-9a-f ]+, memory 0f 1f 44 00 00\)/,
    'verifier',
  ),
);
