/**
 * Attack (write-kernel-text): overwrite a byte of kernel .text (commit_creds+0x10). The
 * attacker first writes through the kernel's own read-only mapping, then sets RW in that very
 * page-table entry (it owns the tables) and writes again, so that only the EPT stands in the
 * way.
 * Expected stop: an `ept-violation` exit (kernel write of the target's gpa) and #PF with cause
 * `ept-violation`; the byte, and the frame's EPT bits (EPT_R | EPT_XS | EPT_IMMUTABLE),
 * unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertLockedWriteStopped } from '../helpers/ept-write-stopped.ts';
import { sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('writing kernel .text ends in an EPT violation; the byte and the EPT bits are unchanged', (t) =>
  assertLockedWriteStopped(t, 'write-kernel-text', (m) => sym(m, 'commit_creds') + 0x10n, EPT_R | EPT_XS | EPT_IMMUTABLE),
);
