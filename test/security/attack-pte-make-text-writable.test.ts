/**
 * Attack (pte-make-text-writable): replace the page-directory entry over commit_creds (a
 * pointer to a page table of 4 KiB read-only entries) by a writable 2 MiB large page of the
 * same frames, then write to the text.
 * Expected stop: the guest's page walk now allows the write, the EPT does not: an
 * `ept-violation` exit (kernel write) and #PF (ept-violation); the text page and its EPT bits
 * unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPageWriteStopped } from '../helpers/ept-write-stopped.ts';

needsFixtures(test)('pte-make-text-writable: stopped by the EPT; the text unchanged', (t) => assertTextPageWriteStopped(t, 'pte-make-text-writable'));
