/**
 * Which attacks of a run share a booted base (checks/attack-bases.ts): a configuration two
 * or more attacks expect is forked from one base; one only a single attack needs boots its own
 * machine, since a base would cost a boot and a fork.
 */
import test from 'ava';
import { AttackBases } from '../../checks/attack-bases.ts';
import type { MachineConfig } from '../../machine/machine.ts';

const plain: MachineConfig = { kernel: 'real', keys: { pubkeys: ['/k/trusted.pub.json'], certs: ['/k/cert.der'], revoked: [] }, verifierSpare: false };
const revoked: MachineConfig = { ...plain, keys: { ...plain.keys, revoked: ['/k/revoked.txt'] } };
const faults: MachineConfig = { kernel: 'real', keys: plain.keys, faultInjection: true };

test('a configuration that two attacks expect is forked; one that a single attack expects boots its own', (t) => {
  const b = new AttackBases(2);
  b.expect(plain);
  b.expect({ ...plain });
  b.expect(revoked);
  b.expect(faults);
  b.expect(faults);
  t.true(b.forks(plain));
  t.true(b.forks(faults));
  t.false(b.forks(revoked), 'the revoked-key configuration differs in one key file');
  t.false(b.forks({ ...plain, protectedMemory: true }), 'a configuration no attack expected');
});

test('the shared kernel image does not make two configurations differ', (t) => {
  const b = new AttackBases(1);
  b.expect({ ...plain, image: {} as never });
  b.expect({ ...plain, image: { other: true } as never });
  t.true(b.forks(plain));
});
