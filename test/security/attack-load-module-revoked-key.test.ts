/**
 * Attack (load-module-revoked-key): load crc7.ko signed by a module-signing key that the
 * keyring holds but a revocation file (given to the machine for this attack) revokes.
 * Expected stop: the verifier denies the module-load request (module-signature: the key is
 * revoked): -KVM_EPERM, a `heki-denial` exit of kind verification (module-load), an audit
 * record ok=false and applied=false; no module is recorded by the core and none of the frames
 * the sections occupied became executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertModuleLoadDenied } from '../helpers/module-load-denied.ts';

needsFixtures(test)('load-module-revoked-key: the verifier denies the load; nothing becomes executable', (t) =>
  assertModuleLoadDenied(t, 'load-module-revoked-key', /^module-signature: module crc7: key [0-9a-f]{16} is revoked/),
);
