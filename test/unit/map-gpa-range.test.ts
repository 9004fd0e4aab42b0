/**
 * KVM_HC_MAP_GPA_RANGE (12): the guest shares and takes back ranges in protected-memory mode.
 */
import { gfn } from '../../shared/addr.ts';
import test from 'ava';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { HC, KVM_MAP_GPA_RANGE, KVM_STATUS } from '../../shared/abi.ts';

const SHARED = BigInt(KVM_MAP_GPA_RANGE.DECRYPTED);
const PRIVATE = BigInt(KVM_MAP_GPA_RANGE.ENCRYPTED);

test("the numbers and bits are the kernel's (kvm_para.h)", (t) => {
  t.is(HC.MAP_GPA_RANGE, 12);
  t.is(KVM_MAP_GPA_RANGE.PAGE_SZ_4K, 0);
  t.is(KVM_MAP_GPA_RANGE.PAGE_SZ_2M, 1);
  t.is(KVM_MAP_GPA_RANGE.PAGE_SZ_1G, 2);
  t.is(KVM_MAP_GPA_RANGE.ENCRYPTED, 0x10);
  t.is(KVM_MAP_GPA_RANGE.DECRYPTED, 0);
});

test('outside protected-memory mode the call is not enabled: -KVM_ENOSYS', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, 0x70_0000n, 1n, SHARED), -KVM_STATUS.KVM_ENOSYS);
  t.false(m.vmm.core.memoryAttributes.isPrivate(gfn(0x700)));
});

test('memory starts private; sharing and unsharing a range flips exactly its frames', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  const attrs = m.vmm.core.memoryAttributes;
  t.true(attrs.isPrivate(gfn(0x700)));
  t.is(attrs.sharedCount(), 0);
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, 0x70_0000n, 3n, SHARED | BigInt(KVM_MAP_GPA_RANGE.PAGE_SZ_2M)), 0);
  t.deepEqual(
    [0x6ff, 0x700, 0x701, 0x702, 0x703].map((f) => attrs.isPrivate(gfn(f))),
    [true, false, false, false, true],
  );
  t.is(attrs.sharedCount(), 3);
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, 0x70_1000n, 1n, PRIVATE), 0);
  t.deepEqual(
    [0x700, 0x701, 0x702].map((f) => attrs.isPrivate(gfn(f))),
    [false, true, false],
  );
  t.is(attrs.sharedCount(), 2);
});

test('bad arguments are -KVM_EINVAL and change nothing', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  const attrs = m.vmm.core.memoryAttributes;
  const gen = attrs.generation;
  const size = m.vmm.core.memory.size;
  const cases: Array<[bigint, bigint, bigint]> = [
    [0x70_0001n, 1n, SHARED], // unaligned
    [0x70_0000n, 0n, SHARED], // no pages
    [size - 0x1000n, 2n, SHARED], // past the end
    [0n, (1n << 64n) - 1n, SHARED], // would wrap in u64
    [0x70_0000n, 1n, 0x20n], // unknown bit
    [0x70_0000n, 1n, 3n], // page-size hint 3
    [0x70_0000n, 1n, 0xfn], // page-size hint 15
  ];
  for (const [a0, a1, a2] of cases) t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, a0, a1, a2), -KVM_STATUS.KVM_EINVAL, `${a0} ${a1} ${a2}`);
  t.is(attrs.generation, gen);
  t.is(attrs.sharedCount(), 0);
});

test('from CPL 3 the call is -KVM_EPERM', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  m.cpu.setCpl(3);
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, 0x70_0000n, 1n, SHARED), -KVM_STATUS.KVM_EPERM);
  t.true(m.vmm.core.memoryAttributes.isPrivate(gfn(0x700)));
});

test('a VMM reset makes every frame private again', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, 0x70_0000n, 1n, SHARED), 0);
  m.vmm.reset();
  t.true(m.vmm.core.memoryAttributes.isPrivate(gfn(0x700)));
  t.is(m.vmm.core.memoryAttributes.sharedCount(), 0);
});
