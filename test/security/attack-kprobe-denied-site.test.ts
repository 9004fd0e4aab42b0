/**
 * Attack (kprobe-denied-site): install a kprobe (int3) inside commit_creds; the kprobe policy
 * has no allow range (default deny).
 * Expected stop: the verifier's kprobe plugin denies ("is not in an allowed range (default
 * deny)"): -KVM_EPERM, a `heki-denial` exit, an audit record ok=false; no 0xcc at the site; the
 * bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';
import { nonSiteAddress } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('kprobe-denied-site: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(
    t,
    'kprobe-denied-site',
    (m) => nonSiteAddress(m.kernel!),
    /kprobe: kprobe site 0x[0-9a-f]+ is not in an allowed range \(default deny\)/,
    'verifier',
  ),
);
