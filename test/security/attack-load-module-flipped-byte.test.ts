/**
 * Attack (load-module-flipped-byte): load crc7.ko with one byte of its .text flipped in the
 * file after Debian signed it (the PKCS#7 trailer left as it was).
 * Expected stop: the verifier denies the module-load request (module-pkcs7: signature
 * mismatch): -KVM_EPERM, a `heki-denial` exit of kind verification (module-load), an audit
 * record ok=false and applied=false; no module is recorded by the core and none of the frames
 * the sections occupied became executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertModuleLoadDenied } from '../helpers/module-load-denied.ts';

needsFixtures(test)('load-module-flipped-byte: the verifier denies the load; nothing becomes executable', (t) =>
  assertModuleLoadDenied(t, 'load-module-flipped-byte', /^module-pkcs7: module crc7: PKCS#7 signature mismatch/),
);
