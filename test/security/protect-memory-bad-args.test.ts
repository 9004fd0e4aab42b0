/**
 * Attack: confuse the core with malformed KVM_HC_PROTECT_MEMORY arguments: an unaligned or
 * out-of-range list address, a list that loops, an oversized list, unaligned, empty or
 * out-of-range ranges, unknown attribute bits, and W+X requests.
 * Expected stop: -KVM_EINVAL, and the EPT is exactly as before (no partial application).
 */
import { gpa as physAddr } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, bootSynthetic, type SyntheticMachine } from '../helpers/synthetic-machine.ts';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { PAGE_LIST_MAX_ENTRIES, encodePageList } from '../../shared/page-list.ts';

const EINVAL = -KVM_STATUS.KVM_EINVAL;
const R = MEM_ATTR.READ;
const good = { pa: LAYOUT.data, epa: LAYOUT.data + 0x1000n, permissions: R };

function eptSnapshot(m: SyntheticMachine): string {
  return JSON.stringify(m.vmm.core.ept.entries());
}

function rawList(m: SyntheticMachine, gpa: bigint, next: bigint, npages: bigint, entries: Array<[bigint, bigint, bigint]>): void {
  const page = new Uint8Array(4096);
  const dv = new DataView(page.buffer);
  dv.setBigUint64(8, next, true);
  dv.setBigUint64(16, npages, true);
  entries.forEach(([pa, epa, perm], i) => {
    dv.setBigUint64(24 + i * 24, pa, true);
    dv.setBigUint64(32 + i * 24, epa, true);
    dv.setBigUint64(40 + i * 24, perm, true);
  });
  m.vmm.core.memory.write(physAddr(gpa), page);
}

const cases: Array<[string, (m: SyntheticMachine) => bigint]> = [
  ['unaligned list address', () => LAYOUT.pageList + 8n],
  ['list address beyond guest memory', () => 1n << 40n],
  ['list address at the last partial page', (m) => m.vmm.core.memory.size],
  [
    'a chain that loops',
    (m) => {
      rawList(m, LAYOUT.pageList, LAYOUT.pageList + 0x1000n, 1n, [[good.pa, good.epa, BigInt(R)]]);
      rawList(m, LAYOUT.pageList + 0x1000n, LAYOUT.pageList, 1n, [[good.pa, good.epa, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'a list that points to itself',
    (m) => {
      rawList(m, LAYOUT.pageList, LAYOUT.pageList, 1n, [[good.pa, good.epa, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'an oversized list (npages > 169)',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, BigInt(PAGE_LIST_MAX_ENTRIES + 1), [[good.pa, good.epa, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'a huge npages',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, 0xffff_ffff_ffff_ffffn, []);
      return LAYOUT.pageList;
    },
  ],
  [
    'a next_pa that is unaligned',
    (m) => {
      rawList(m, LAYOUT.pageList, LAYOUT.pageList + 0x1004n, 1n, [[good.pa, good.epa, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'an unaligned range',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, 2n, [
        [good.pa, good.epa, BigInt(R)],
        [LAYOUT.text + 1n, LAYOUT.text + 0x1000n, BigInt(R)],
      ]);
      return LAYOUT.pageList;
    },
  ],
  [
    'an empty range',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, 1n, [[LAYOUT.text, LAYOUT.text, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'a reversed range',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, 1n, [[LAYOUT.text + 0x1000n, LAYOUT.text, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'a range beyond guest memory',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, 1n, [[m.vmm.core.memory.size - 0x1000n, m.vmm.core.memory.size + 0x1000n, BigInt(R)]]);
      return LAYOUT.pageList;
    },
  ],
  [
    'unknown attribute bits',
    (m) => {
      rawList(m, LAYOUT.pageList, 0n, 2n, [
        [good.pa, good.epa, BigInt(R)],
        [LAYOUT.text, LAYOUT.text + 0x1000n, 1n << 7n],
      ]);
      return LAYOUT.pageList;
    },
  ],
  [
    'a writable and executable range (W^X)',
    (m) => {
      m.vmm.core.memory.write(physAddr(LAYOUT.pageList), encodePageList([{ ...good, permissions: R | MEM_ATTR.WRITE | MEM_ATTR.EXEC }], 0n));
      return LAYOUT.pageList;
    },
  ],
];

for (const [name, setup] of cases) {
  test(`PROTECT_MEMORY with ${name} returns -KVM_EINVAL and changes nothing`, async (t) => {
    const m = bootSynthetic();
    const before = eptSnapshot(m);
    const a0 = setup(m);
    t.is(await m.cpu.vmcall(HC.PROTECT_MEMORY, a0), EINVAL);
    t.is(eptSnapshot(m), before);
    t.is(m.vmm.core.stopped, undefined);
  });
}

test('a valid list is applied (control)', async (t) => {
  const m = bootSynthetic();
  rawList(m, LAYOUT.pageList, 0n, 1n, [[good.pa, good.epa, BigInt(R)]]);
  t.is(await m.cpu.vmcall(HC.PROTECT_MEMORY, LAYOUT.pageList), 0);
  t.deepEqual(m.vmm.core.ept.entries(), [[Number(LAYOUT.data >> 12n), 1]]);
});
