/**
 * Attack (alias-write-protected-page): map commit_creds's text frame a second time, at a fresh
 * vmalloc address, writable (the attacker writes the PTE; the kernel's Heki bookkeeping never
 * hears of it), and write through that alias.
 * Expected stop: an `ept-violation` exit (kernel write of the text frame) and #PF
 * (ept-violation); the text page and its EPT bits (R|X|IMMUTABLE) unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { assertTextPageWriteStopped } from '../helpers/ept-write-stopped.ts';

needsFixtures(test)('alias-write-protected-page: stopped by the EPT; the text unchanged', (t) => assertTextPageWriteStopped(t, 'alias-write-protected-page'));
