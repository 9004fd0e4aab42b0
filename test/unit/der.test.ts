/**
 * The strict DER check (verifier-vm/signature/der.ts `derViolation`) that PKCS#7 blobs and
 * keyring certificates must pass: each X.690 section 10 rule it enforces, on a minimal input
 * that breaks only that rule, named with the offset at fault; and the DER it must accept.
 */
import test from 'ava';
import { derViolation, readTlv } from '../../verifier-vm/signature/der.ts';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/ /g, ''), 'hex'));

test('DER is accepted: nested sequences, minimal INTEGERs, long-form lengths from 128, OIDs, BIT STRING, NULL, BOOLEAN', (t) => {
  const long = `3081 80 04 7e ${'00'.repeat(126)}`;
  for (const ok of [
    '3000',
    '3003 020100',
    '3007 02020080 0101ff',
    '020180',
    '0201ff',
    '0202ff7f',
    long,
    '06092a864886f70d010701',
    '0500',
    '03020780',
    '030100',
    '0a0101',
    'a003 020102',
    '0c03616263',
  ]) {
    t.is(derViolation(hex(ok)), undefined, ok);
  }
});

test('each DER rule broken alone is named, with the offset of the element or length at fault', (t) => {
  const cases: [string, number, RegExp][] = [
    ['', 0, /empty input/],
    ['3003 020100 00', 5, /1 bytes after the outer element/],
    ['3004 02020001', 2, /INTEGER not minimally encoded \(redundant leading 0x00 byte\)/],
    ['3004 0202ff80', 2, /INTEGER not minimally encoded \(redundant leading 0xff byte\)/],
    ['3002 0200', 2, /empty INTEGER/],
    ['0a020001', 0, /ENUMERATED not minimally encoded/],
    ['3004 02810100', 3, /length 1 in the long form/],
    ['308200 03 020100', 1, /length not in the shortest form \(leading zero byte\)/],
    ['3080 020100 0000', 1, /indefinite length/],
    ['3085 0000000003', 1, /length of 5 bytes/],
    ['3005 020100', 0, /content of 5 bytes overruns/],
    ['1f0100', 0, /high tag number form/],
    ['2403 040100', 0, /constructed encoding of universal tag 4/],
    ['010101', 0, /BOOLEAN not one byte 00 or ff/],
    ['050100', 0, /NULL with content/],
    ['030108', 0, /BIT STRING with 8 unused bits/],
    ['03020101', 0, /BIT STRING with unused bits not zero/],
    ['0601 80', 0, /ends inside a sub-identifier/],
    ['0602 8001', 0, /sub-identifier with a leading 0x80 byte/],
    ['0600', 0, /empty OBJECT IDENTIFIER/],
  ];
  for (const [input, offset, problem] of cases) {
    const v = derViolation(hex(input));
    t.truthy(v, input);
    t.is(v?.offset, offset, input);
    t.regex(v?.problem ?? '', problem, input);
  }
  // Nesting is bounded, so a hostile blob cannot recurse without end.
  let nested = hex('3000');
  for (let i = 0; i < 40; i++) nested = Uint8Array.from([0x30, nested.length, ...nested]);
  t.regex(derViolation(nested)?.problem ?? '', /nested more than 32 deep/);
});

test('the walker (readTlv) still takes a long-form length, for locating fields in a blob the DER check refuses', (t) => {
  t.deepEqual(readTlv(hex('3081 03 020100'), 0, 6), { tag: 0x30, start: 0, contentStart: 3, end: 6 });
  t.is(readTlv(hex('3080 0000'), 0, 4), undefined);
});
