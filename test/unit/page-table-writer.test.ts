/**
 * The guest's page-table writer: mapTable (split_large_page + populate_pte: a table filled
 * in one page write, then pointed at) leaves the same tables as clearing the 2 MiB entry
 * and mapping its 512 pages one by one, with or without the port's page write; and it
 * reports a port that refuses the write.
 */
import test from 'ava';
import { BumpFrameAllocator, PTE, PTE_AD, PTE_ADDR_MASK, PageTableWriter, type PhysPort } from '../../guest/mm/page-table-writer.ts';

const ROOT = 0x10_0000n;

function memoryPort(withPage: boolean, refuse?: (pa: bigint) => boolean): { port: PhysPort; words: Map<bigint, bigint> } {
  const words = new Map<bigint, bigint>();
  const port: PhysPort = {
    readU64: (pa) => words.get(pa) ?? 0n,
    writeU64: (pa, v) => {
      if (refuse?.(pa)) return false;
      words.set(pa, v);
      return true;
    },
    ...(withPage
      ? {
          writePage: (pa: bigint, bytes: Uint8Array) => {
            if (refuse?.(pa)) return false;
            const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
            for (let i = 0; i < 512; i++) words.set(pa + BigInt(i) * 8n, view.getBigUint64(i * 8, true));
            return true;
          },
        }
      : {}),
  };
  return { port, words };
}

const VA = 0xffff_ffff_8100_0000n;
const leaf = (i: number): bigint => (0x100_0000n + BigInt(i) * 0x1000n) | PTE.G | PTE_AD | (i % 3 === 0 ? PTE.NX : 0n) | (i % 5 === 0 ? PTE.RW : 0n);

function nonZero(words: Map<bigint, bigint>): [bigint, bigint][] {
  return [...words].filter(([, v]) => v !== 0n).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

for (const withPage of [true, false]) {
  test(`mapTable over a 2 MiB mapping leaves the tables that zeroing it and 512 maps leave (${withPage ? 'page write' : 'word writes'})`, (t) => {
    const a = memoryPort(withPage);
    const wa = new PageTableWriter(ROOT, a.port, new BumpFrameAllocator(ROOT + 0x1000n, ROOT + 0x10_0000n));
    t.is(wa.map(VA, 0x100_0000n, PTE.RW | PTE.G | PTE_AD, 2), undefined);
    t.is(wa.mapTable(VA, leaf), undefined);

    const b = memoryPort(withPage);
    const wb = new PageTableWriter(ROOT, b.port, new BumpFrameAllocator(ROOT + 0x1000n, ROOT + 0x10_0000n));
    t.is(wb.map(VA, 0x100_0000n, PTE.RW | PTE.G | PTE_AD, 2), undefined);
    const slot = wb.entryAddress(VA, 2);
    if (typeof slot !== 'bigint') return t.fail('no level-2 slot');
    b.port.writeU64(slot, 0n);
    for (let i = 0; i < 512; i++) t.is(wb.map(VA + BigInt(i) * 0x1000n, leaf(i) & PTE_ADDR_MASK, leaf(i) & ~PTE_ADDR_MASK), undefined);

    t.deepEqual(nonZero(a.words), nonZero(b.words));
    t.is(wa.lookup(VA + 7n * 0x1000n), leaf(7) | PTE.P);
  });
}

test('mapTable reports the table write the port refused and leaves the 2 MiB mapping in place', (t) => {
  const table = ROOT + 0x4000n; // the fourth frame: after the PDPT, PD and the first table
  const m = memoryPort(true, (pa) => pa >= table && pa < table + 0x1000n);
  const w = new PageTableWriter(ROOT, m.port, new BumpFrameAllocator(ROOT + 0x1000n, ROOT + 0x10_0000n));
  t.is(w.map(VA, 0x100_0000n, PTE.RW | PTE.G | PTE_AD, 2), undefined);
  t.is(w.map(VA + 0x20_0000n, 0x120_0000n, PTE.RW | PTE.G | PTE_AD, 1), undefined); // takes frame 3
  t.deepEqual(w.mapTable(VA, leaf), { kind: 'memory', pa: table });
  t.is((w.lookup(VA, 2)! & PTE.PS) !== 0n, true, 'the large page still maps the range');
});
