import test from 'ava';
import { MSR_FILTER_READ, MSR_FILTER_WRITE, denyWritesFilter, msrAllowed, validateMsrFilter } from '../../hypervisor/core/msr-filter.ts';
import { MSR } from '../../shared/x86/cpu.ts';

test('bitmap bits allow (1) or deny (0) the flagged operations; the first covering range decides', (t) => {
  const filter = {
    defaultAction: 'allow' as const,
    ranges: [
      { flags: MSR_FILTER_WRITE, base: 0xc0000080, nmsrs: 8, bitmap: Uint8Array.of(0b1111_1011) },
      { flags: MSR_FILTER_READ | MSR_FILTER_WRITE, base: 0xc0000080, nmsrs: 8, bitmap: Uint8Array.of(0) },
    ],
  };
  t.true(msrAllowed(filter, MSR.EFER, 'write'));
  t.false(msrAllowed(filter, MSR.LSTAR, 'write'));
  t.false(msrAllowed(filter, MSR.LSTAR, 'read'), 'reads fall to the second range');
  t.true(msrAllowed(filter, MSR.IA32_SYSENTER_EIP, 'write'), 'uncovered MSRs get the default');
});

test('default deny applies to MSRs no range covers', (t) => {
  const f = { defaultAction: 'deny' as const, ranges: [{ flags: MSR_FILTER_READ, base: 0x10, nmsrs: 1, bitmap: Uint8Array.of(1) }] };
  t.true(msrAllowed(f, 0x10, 'read'));
  t.false(msrAllowed(f, 0x10, 'write'));
  t.false(msrAllowed(f, 0x11, 'read'));
});

test('malformed filters are refused with the problem named', (t) => {
  const tooMany = { defaultAction: 'allow' as const, ranges: Array.from({ length: 17 }, () => ({ flags: 1, base: 0, nmsrs: 1, bitmap: Uint8Array.of(0) })) };
  t.regex((validateMsrFilter(tooMany) as { error: string }).error, /at most 16 ranges/);
  const badFlags = { defaultAction: 'allow' as const, ranges: [{ flags: 4, base: 0, nmsrs: 1, bitmap: Uint8Array.of(0) }] };
  t.regex((validateMsrFilter(badFlags) as { error: string }).error, /flags/);
  const shortBitmap = { defaultAction: 'allow' as const, ranges: [{ flags: 1, base: 0, nmsrs: 9, bitmap: Uint8Array.of(0) }] };
  t.regex((validateMsrFilter(shortBitmap) as { error: string }).error, /bitmap has 1 bytes, 2 needed/);
  t.true(validateMsrFilter(denyWritesFilter([MSR.LSTAR])).ok);
});
