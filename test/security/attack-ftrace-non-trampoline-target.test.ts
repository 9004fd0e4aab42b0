/**
 * Attack (ftrace-non-trampoline-target): turn commit_creds's ftrace site into a call to
 * native_write_cr4 (a gadget that writes CR4), not to an ftrace trampoline.
 * Expected stop: the verifier's ftrace plugin denies ("which is not an ftrace trampoline"):
 * -KVM_EPERM, a `heki-denial` exit, an audit record ok=false; the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';
import { ftraceSiteOf } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('ftrace-non-trampoline-target: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(
    t,
    'ftrace-non-trampoline-target',
    (m) => ftraceSiteOf(m.kernel!, 'commit_creds'),
    /ftrace: ftrace site 0x[0-9a-f]+: call to 0xffffffff81049230, which is not an ftrace trampoline/,
    'verifier',
  ),
);
