/**
 * Attack (write-kernel-rodata): overwrite a .rodata constant (the first entry of
 * sys_call_table). The attacker first writes through the kernel's own read-only mapping, then
 * sets RW in that very page-table entry (it owns the tables) and writes again, so that only the
 * EPT stands in the way.
 * Expected stop: an `ept-violation` exit (kernel write of the target's gpa) and #PF with cause
 * `ept-violation`; the byte, and the frame's EPT bits (EPT_R | EPT_IMMUTABLE), unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertLockedWriteStopped } from '../helpers/ept-write-stopped.ts';
import { sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('writing kernel .rodata ends in an EPT violation; the byte and the EPT bits are unchanged', (t) =>
  assertLockedWriteStopped(t, 'write-kernel-rodata', (m) => sym(m, 'sys_call_table') + 0x0n, EPT_R | EPT_IMMUTABLE),
);
