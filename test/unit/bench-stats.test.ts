import test from 'ava';
import { round } from '../../bench/stats.ts';

test('bench figures keep three significant digits and print without binary noise in the JSON', (t) => {
  // 3.11 M items/s measured as a float: the JSON must say 3110000, not 3110000.0000000005.
  t.is(JSON.stringify(round(3_109_871.7)), '3110000');
  t.is(JSON.stringify(round(98_712_345.2)), '98700000');
  t.is(round(13.94), 13.9);
  t.is(round(0.000123456), 0.000123);
  t.is(round(-2.3456), -2.35);
  t.is(round(0), 0);
  t.true(Number.isNaN(round(Number.NaN)));
  t.is(round(Number.POSITIVE_INFINITY), Number.POSITIVE_INFINITY);
});
