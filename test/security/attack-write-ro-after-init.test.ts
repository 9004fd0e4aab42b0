/**
 * Attack (write-ro-after-init): overwrite ro_after_init data (security_hook_heads, the LSM hook
 * lists). The attacker first writes through the kernel's own read-only mapping, then sets RW in
 * that very page-table entry (it owns the tables) and writes again, so that only the EPT stands
 * in the way.
 * Expected stop: an `ept-violation` exit (kernel write of the target's gpa) and #PF with cause
 * `ept-violation`; the byte, and the frame's EPT bits (EPT_R | EPT_IMMUTABLE), unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertLockedWriteStopped } from '../helpers/ept-write-stopped.ts';
import { sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('writing ro_after_init data ends in an EPT violation; the byte and the EPT bits are unchanged', (t) =>
  assertLockedWriteStopped(t, 'write-ro-after-init', (m) => sym(m, 'security_hook_heads') + 0x0n, EPT_R | EPT_IMMUTABLE),
);
