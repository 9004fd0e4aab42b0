/**
 * Attack (load-module-unknown-key): load crc7.ko re-signed with the attacker's own Ed25519 key,
 * which the verifier's keyring does not hold.
 * Expected stop: the verifier denies the module-load request (module-signature: unknown key):
 * -KVM_EPERM, a `heki-denial` exit of kind verification (module-load), an audit record ok=false
 * and applied=false; no module is recorded by the core and none of the frames the sections
 * occupied became executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertModuleLoadDenied } from '../helpers/module-load-denied.ts';

needsFixtures(test)('load-module-unknown-key: the verifier denies the load; nothing becomes executable', (t) =>
  assertModuleLoadDenied(t, 'load-module-unknown-key', /^module-signature: module crc7: unknown key [0-9a-f]{16}: not in the keyring/),
);
