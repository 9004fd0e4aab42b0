/**
 * Attack (text-patch-outside-verified-text): send KVM_HC_HEKI_TEXT_PATCH with a "patch" whose
 * site is sys_call_table in .rodata, to have the hypervisor write read-only data for it.
 * Expected stop: the core refuses without asking the verifier: the site is not in its map of
 * verified text. -KVM_EPERM, a `heki-denial` exit, an audit record ok=false from plugin `core`;
 * the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPatchDenied } from '../helpers/text-patch-denied.ts';

needsFixtures(test)('text-patch-outside-verified-text: the text patch is refused and the site is unchanged', (t) =>
  assertTextPatchDenied(
    t,
    'text-patch-outside-verified-text',
    (m) => m.image.systemMap.address('sys_call_table')!,
    /^site 0xffffffff82000360 is not in verified kernel or module text$/,
    'core',
  ),
);
