import test from 'ava';
import { VERIFIER_TIMEOUT_ENV, verifierTimeoutMs } from '../../machine/verifier-timeout.ts';

test('the verifier timeout: the configured value, else HEKI_VERIFIER_TIMEOUT_MS, else the link default', (t) => {
  t.deepEqual(verifierTimeoutMs(1234, { [VERIFIER_TIMEOUT_ENV]: '9000' }), { ok: true, value: 1234 });
  t.deepEqual(verifierTimeoutMs(undefined, { [VERIFIER_TIMEOUT_ENV]: '9000' }), { ok: true, value: 9000 });
  t.deepEqual(verifierTimeoutMs(undefined, {}), { ok: true, value: undefined });
  t.deepEqual(verifierTimeoutMs(undefined, { [VERIFIER_TIMEOUT_ENV]: '' }), { ok: true, value: undefined });
});

test('a bad HEKI_VERIFIER_TIMEOUT_MS is refused, naming the variable and the value', (t) => {
  for (const bad of ['0', '-5', '1.5', '5s', 'soon', '600001', ' 100']) {
    const r = verifierTimeoutMs(undefined, { [VERIFIER_TIMEOUT_ENV]: bad });
    t.false(r.ok, bad);
    if (!r.ok) t.is(r.error, `HEKI_VERIFIER_TIMEOUT_MS must be a whole number of milliseconds between 1 and 600000, got '${bad}'`);
  }
});
