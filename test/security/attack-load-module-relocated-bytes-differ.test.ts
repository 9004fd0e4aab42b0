/**
 * Attack (load-module-relocated-bytes-differ): load the genuine crc7.ko, but change one
 * relocated .text byte in memory after the loader placed it and before the hypercall.
 * Expected stop: the verifier denies the module-load request (module-end-state: the placed
 * bytes differ from the signed image relocated at these addresses): -KVM_EPERM, a `heki-denial`
 * exit of kind verification (module-load), an audit record ok=false and applied=false; no
 * module is recorded by the core and none of the frames the sections occupied became
 * executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertModuleLoadDenied } from '../helpers/module-load-denied.ts';

needsFixtures(test)('load-module-relocated-bytes-differ: the verifier denies the load; nothing becomes executable', (t) =>
  assertModuleLoadDenied(
    t,
    'load-module-relocated-bytes-differ',
    /^module-end-state: module crc7: section \.text: relocated bytes differ from the signed image at offset 0x8/,
  ),
);
