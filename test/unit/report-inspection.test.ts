/**
 * The map data behind `heki run --report` (machine/inspection.ts): pages merged into runs
 * only while frames follow one another and the EPT value stays the same; the kernel split
 * into its regions with ro_after_init carved out of .rodata; module sections placed through
 * the guest's page tables, in address order.
 */
import { gfn, type Gfn } from '../../shared/addr.ts';
import test from 'ava';
import { inspectMachine, mergeRuns } from '../../machine/inspection.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import type { KernelBoundaries } from '../../shared/kernel-image/kernel-layout.ts';

const RX = EPT_R | EPT_XS;
const RW = EPT_R | EPT_W;

test('runs merge consecutive frames with equal permissions and split on a gap, a change or an unmapped page', (t) => {
  const runs = mergeRuns(0xffffffffc0000000n, [
    { frame: 10, perms: RX },
    { frame: 11, perms: RX },
    { frame: 12, perms: RX | EPT_IMMUTABLE }, // permissions change
    { frame: 20, perms: RX | EPT_IMMUTABLE }, // frame gap
    { frame: undefined, perms: 0 },
    { frame: undefined, perms: 0 },
    { frame: 21, perms: RW },
  ]);
  t.deepEqual(runs, [
    { vaddr: 0xffffffffc0000000n, gpa: 10 * 4096, pages: 2, perms: RX },
    { vaddr: 0xffffffffc0002000n, gpa: 12 * 4096, pages: 1, perms: RX | EPT_IMMUTABLE },
    { vaddr: 0xffffffffc0003000n, gpa: 20 * 4096, pages: 1, perms: RX | EPT_IMMUTABLE },
    { vaddr: 0xffffffffc0004000n, gpa: null, pages: 2, perms: 0 },
    { vaddr: 0xffffffffc0006000n, gpa: 21 * 4096, pages: 1, perms: RW },
  ]);
});

const K = 0xffffffff80000000n;
const boundaries: KernelBoundaries = {
  _stext: K + 0x1000000n,
  _etext: K + 0x1003800n, // 4 pages, the last one partly
  __start_rodata: K + 0x2000000n,
  __end_rodata: K + 0x2006000n,
  __start_ro_after_init: K + 0x2002000n,
  __end_ro_after_init: K + 0x2003000n,
  _sdata: K + 0x2a00000n,
  _edata: K + 0x2a02000n,
  __init_begin: K + 0x3000000n,
  __init_end: K + 0x3001000n,
  __bss_start: K + 0x3100000n,
  __bss_stop: K + 0x3101000n,
  __fentry__: K + 0x1000100n,
};

test('the kernel is split into its regions, ro_after_init carved out of .rodata, placed like the manifest says', (t) => {
  const perms = new Map<number, number>([
    [0x1000, RX | EPT_IMMUTABLE],
    [0x1001, RX | EPT_IMMUTABLE],
    [0x1002, RX | EPT_IMMUTABLE],
    [0x1003, RX | EPT_IMMUTABLE],
    [0x2002, EPT_R],
  ]);
  const ins = inspectMachine({
    memoryBytes: 1 << 30,
    ept: { get: (f) => perms.get(f) ?? EPT_R },
    kernelRegions: [
      { name: '.text', vaddr: K + 0x1000000n, paddr: 0x1000000n, size: 0x3800 },
      { name: '.rodata', vaddr: K + 0x2000000n, paddr: 0x2000000n, size: 0x6000 },
    ],
    boundaries,
    modules: [],
    verifiedModules: new Set(),
    translate: () => undefined,
  });
  t.deepEqual(
    ins.kernel.map((r) => [r.name, r.source, r.runs.reduce((a, x) => a + x.pages, 0)]),
    [
      ['.text', 'manifest', 4],
      ['.rodata', 'manifest', 2],
      ['ro_after_init', 'manifest', 1],
      ['.rodata (rest)', 'manifest', 3],
      ['.data', 'system-map', 2],
      ['init (freed after boot)', 'system-map', 1],
      ['.bss', 'system-map', 1],
    ],
  );
  t.deepEqual(ins.kernel[0]!.runs, [{ vaddr: K + 0x1000000n, gpa: 0x1000000, pages: 4, perms: RX | EPT_IMMUTABLE }]);
  t.is(ins.kernel[2]!.runs[0]!.gpa, 0x2002000);
});

test('module sections are placed through the page tables, in address order, empty ones left out', (t) => {
  const base = 0xffffffffc0100000n;
  const frames = new Map<bigint, Gfn>([
    [base, gfn(0x4e00)],
    [base + 0x1000n, gfn(0x4e07)],
  ]);
  const ins = inspectMachine({
    memoryBytes: 1 << 30,
    ept: { get: (f) => (f === 0x4e00 ? RX : EPT_R) },
    kernelRegions: [],
    modules: [
      {
        name: 'crc7',
        sections: [
          { name: '.rodata', addr: base + 0x1000n, size: 256 },
          { name: '.text', addr: base, size: 36 },
          { name: '.bss', addr: base + 0x2000n, size: 0 },
        ],
      },
    ],
    verifiedModules: new Set(['crc7']),
    translate: (va) => frames.get(va),
  });
  t.deepEqual(ins.kernel, []);
  t.is(ins.modules.length, 1);
  t.true(ins.modules[0]!.verified);
  t.deepEqual(
    ins.modules[0]!.sections.map((s) => [s.name, s.runs[0]!.gpa, s.runs[0]!.perms]),
    [
      ['.text', 0x4e00000, RX],
      ['.rodata', 0x4e07000, EPT_R],
    ],
  );
});
