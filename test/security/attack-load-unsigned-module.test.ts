/**
 * Attack (load-unsigned-module): load crc7.ko with its signature trailer stripped.
 * Expected stop: the verifier denies the module-load request (module-signature: module crc7 is
 * not signed): -KVM_EPERM, a `heki-denial` exit of kind verification (module-load), an audit
 * record ok=false and applied=false; no module is recorded by the core and none of the frames
 * the sections occupied became executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertModuleLoadDenied } from '../helpers/module-load-denied.ts';

needsFixtures(test)('load-unsigned-module: the verifier denies the load; nothing becomes executable', (t) =>
  assertModuleLoadDenied(t, 'load-unsigned-module', /^module-signature: module crc7 is not signed/),
);
