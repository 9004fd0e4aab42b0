/**
 * Attack (ftrace-non-site): ask for an ftrace patch (a call to ftrace_caller) 0x10 bytes past
 * commit_creds's ftrace site: inside the function, not an `__mcount_loc` site.
 * Expected stop: the verifier's ftrace plugin denies ("is not an ftrace site"): -KVM_EPERM, a
 * `heki-denial` exit (verification of text-patch), an audit record ok=false; the bytes at the
 * site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';
import { nonSiteAddress } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('ftrace-non-site: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(t, 'ftrace-non-site', (m) => nonSiteAddress(m.kernel!), /ftrace: 0x[0-9a-f]+ is not an ftrace site/, 'verifier'),
);
