/**
 * Attack (ftrace-freed-init-site): ftrace-patch a call to ftrace_caller into a site of
 * .init.text, which was freed at the end of boot (its frames are plain data now).
 * Expected stop: the core refuses without asking the verifier: freed .init.text is not in its
 * map of verified text. -KVM_EPERM, a `heki-denial` exit, an audit record ok=false from plugin
 * `core`; the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';
import { initTextSite } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('ftrace-freed-init-site: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(t, 'ftrace-freed-init-site', (m) => initTextSite(m.kernel!), /^site 0x[0-9a-f]+ is not in verified kernel or module text$/, 'core'),
);
