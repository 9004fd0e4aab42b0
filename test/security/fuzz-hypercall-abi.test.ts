/**
 * Fuzzing the hypercall ABI (issue 5, part 3): random hypercall numbers, arguments, page lists
 * written into guest memory and privilege levels, with random CR writes and disk DMA mixed
 * in, against a synthetic machine locked as heki_late_init locks it (all RAM RW and not
 * executable, text RX, rodata and ro_after_init R, all three immutable).
 *
 * Attack: a guest that owns its kernel tries every hypercall input it can think of to get a
 * page that is both writable and executable, to unpin a CR bit, to change an IMMUTABLE page,
 * or to crash the core.
 * Expected stop, checked after EVERY call:
 * - no frame is both writable and executable (W^X holds globally: nothing stays at the RWX
 *   default after the initial lock);
 * - pins only grow, and a pinned bit that was set in CR0/CR4 stays set;
 * - no IMMUTABLE frame changes its EPT bits, and no byte of the locked kernel changes;
 * - a failing call changes nothing; a call from CPL 3 is -KVM_EPERM and changes nothing;
 * - the return value is 0, the ABI version (LOCK_CR_UPDATE's flag), or a known negative
 *   status; the VM is never stopped (no internal error), and no exception escapes;
 * - a disk DMA succeeds only into pages the EPT lets the guest write.
 *
 * `npm test` runs 1,000 runs of 100 hypercalls (100,000 calls); `npm run fuzz` many more.
 */
import { gfn, gpa, isAddrError, tryGpa, gpaToGfn } from '../../shared/addr.ts';
import test from 'ava';
import fc from 'fast-check';
import { HC, HEKI_ABI_VERSION, KVM_MAP_GPA_RANGE, KVM_STATUS, MEM_ATTR, MEM_ATTR_MASK, PINNABLE, statusName } from '../../shared/abi.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { EPT_FROZEN, EPT_IMMUTABLE, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';
import { VIRTIO_BLK_T, encodeVirtioBlkRequest } from '../../shared/virtio-blk.ts';
import { LAYOUT, bootSynthetic, protect, type SyntheticMachine } from '../helpers/synthetic-machine.ts';
import { abiRuns, checkProperty } from '../helpers/fuzz.ts';

const MEM = 8n << 20n;
const FRAMES = Number(MEM >> 12n);
const CALLS_PER_RUN = 100;
const LIST_A = 0x50_0000n;
const LIST_B = 0x51_0000n;
const SCRATCH = 0x52_0000n; // virtio descriptor and status
const KNOWN_NEGATIVE = new Set(Object.values(KVM_STATUS).map((c) => -c));
const LOCKED_KERNEL = [LAYOUT.text, LAYOUT.rodata, LAYOUT.roAfterInit];

// ------------------------------------------------------------------ arbitraries

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
/** A guest-physical address, mostly inside memory and often page-aligned. */
const gpaArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: FRAMES }).map((f) => BigInt(f) << 12n) },
  { weight: 2, arbitrary: fc.constantFrom(...LOCKED_KERNEL, LAYOUT.data, LAYOUT.tables, LIST_A, MEM - 0x1000n, MEM) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: MEM + 0x10000n }) },
  { weight: 1, arbitrary: u64 },
);
const { READ: R, WRITE: W, EXEC: X, IMMUTABLE: I, EXEC_USER: XU } = MEM_ATTR;
const permArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0, R, R | W, R | X, X, R | I, R | X | I, R | W | I, R | XU).map(BigInt) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: MEM_ATTR_MASK }).map(BigInt) },
  { weight: 1, arbitrary: u64 },
);
interface Entry {
  pa: bigint;
  pages: number;
  permissions: bigint;
}
interface List {
  entries: Entry[];
  /** The header's npages, or null for the real entry count. */
  npages: bigint | null;
  next: bigint;
  /** Entries of the second list page (LIST_B), for chains. */
  second: Entry[];
}
const entryArb: fc.Arbitrary<Entry> = fc.record({
  pa: gpaArb,
  pages: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2100 }) }),
  permissions: permArb,
});
const listArb: fc.Arbitrary<List> = fc.record({
  entries: fc.array(entryArb, { maxLength: 4 }),
  npages: fc.oneof({ weight: 9, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.oneof(fc.bigInt({ min: 0n, max: 200n }), u64) }),
  next: fc.oneof({ weight: 8, arbitrary: fc.constant(0n) }, { weight: 2, arbitrary: fc.constantFrom(LIST_A, LIST_B) }, { weight: 1, arbitrary: gpaArb }),
  second: fc.array(entryArb, { maxLength: 3 }),
});

type Op =
  | { kind: 'lock-cr'; a0: bigint; a1: bigint; a2: bigint }
  | { kind: 'protect'; list: List | null; a0: bigint }
  | { kind: 'map-gpa'; a0: bigint; a1: bigint; a2: bigint }
  | { kind: 'other'; nr: number; args: bigint[] };
type Side = null | { kind: 'cr'; cr: 0 | 4; flip: bigint } | { kind: 'dma'; type: number; sector: bigint; dataGpa: bigint; sectors: number; statusGpa: bigint };
interface Step {
  side: Side;
  op: Op;
  cpl: 0 | 3;
}
interface Run {
  protectedMemory: boolean;
  steps: Step[];
}

const pinnable = (cr: 0 | 4) => fc.bigInt({ min: 0n, max: PINNABLE[cr] }).map((b) => b & PINNABLE[cr]);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc.record({ kind: fc.constant('lock-cr' as const), a0: fc.constantFrom(0n, 4n), a1: fc.oneof(pinnable(0), pinnable(4)), a2: fc.constant(0n) }),
      fc.record({
        kind: fc.constant('lock-cr' as const),
        a0: fc.oneof(fc.bigInt({ min: 0n, max: 8n }), u64),
        a1: u64,
        a2: fc.oneof(fc.bigInt({ min: 0n, max: 3n }), u64),
      }),
    ),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('protect' as const), list: listArb as fc.Arbitrary<List | null>, a0: fc.constant(LIST_A) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('protect' as const), list: fc.constant(null), a0: gpaArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('map-gpa' as const),
      a0: gpaArb,
      a1: fc.oneof(fc.bigInt({ min: 0n, max: 64n }), u64),
      a2: fc.oneof(
        fc.constantFrom(BigInt(KVM_MAP_GPA_RANGE.DECRYPTED), BigInt(KVM_MAP_GPA_RANGE.ENCRYPTED), 1n, 0x12n),
        fc.bigInt({ min: 0n, max: 0x3fn }),
        u64,
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('other' as const),
      nr: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), fc.constantFrom(1000, 2 ** 53, -1)),
      args: fc.array(fc.oneof(gpaArb, u64), { minLength: 4, maxLength: 4 }),
    }),
  },
);
/** What happens before a call: nothing, a CR write, or a disk request. */
const sideArb: fc.Arbitrary<Side> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('cr' as const),
      cr: fc.constantFrom(0 as const, 4 as const),
      flip: fc.bigInt({ min: 0n, max: (1n << 24n) - 1n }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('dma' as const),
      type: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(VIRTIO_BLK_T.IN, VIRTIO_BLK_T.OUT) }, { weight: 1, arbitrary: fc.nat() }),
      sector: fc.oneof({ weight: 8, arbitrary: fc.bigInt({ min: 0n, max: 2100n }) }, { weight: 1, arbitrary: u64 }),
      dataGpa: gpaArb,
      sectors: fc.integer({ min: 0, max: 9 }),
      statusGpa: fc.oneof({ weight: 4, arbitrary: fc.constant(SCRATCH + 0x100n) }, { weight: 1, arbitrary: gpaArb }),
    }),
  },
);
const stepArb: fc.Arbitrary<Step> = fc.record({
  side: sideArb,
  op: opArb,
  cpl: fc.oneof({ weight: 9, arbitrary: fc.constant(0 as const) }, { weight: 1, arbitrary: fc.constant(3 as const) }),
});
const runArb: fc.Arbitrary<Run> = fc.record({
  protectedMemory: fc.boolean(),
  steps: fc.array(stepArb, { minLength: CALLS_PER_RUN, maxLength: CALLS_PER_RUN }),
});

// ------------------------------------------------------------------ the machine

function encodeList(entries: readonly Entry[], npages: bigint | null, next: bigint): Uint8Array {
  const page = new Uint8Array(4096);
  const dv = new DataView(page.buffer);
  dv.setBigUint64(8, BigInt.asUintN(64, next), true);
  dv.setBigUint64(16, npages ?? BigInt(entries.length), true);
  entries.forEach((e, i) => {
    const off = 24 + i * 24;
    dv.setBigUint64(off, BigInt.asUintN(64, e.pa), true);
    dv.setBigUint64(off + 8, BigInt.asUintN(64, e.pa + BigInt(e.pages) * 0x1000n), true);
    dv.setBigUint64(off + 16, e.permissions, true);
  });
  return page;
}

async function lockedMachine(protectedMemory: boolean): Promise<SyntheticMachine> {
  const m = bootSynthetic({ memoryBytes: MEM, protectedMemory });
  const I = MEM_ATTR.IMMUTABLE;
  const RW = MEM_ATTR.READ | MEM_ATTR.WRITE;
  const r = await protect(m, [
    { pa: 0n, epa: MEM, permissions: RW },
    { pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC | I },
    { pa: LAYOUT.rodata, epa: LAYOUT.rodata + 0x1000n, permissions: MEM_ATTR.READ | I },
    { pa: LAYOUT.roAfterInit, epa: LAYOUT.roAfterInit + 0x1000n, permissions: MEM_ATTR.READ | I },
  ]);
  if (r !== 0) throw new Error(`initial lock failed: ${r}`);
  if (protectedMemory) {
    // The guest shares its scratch page for the disk's descriptor and status, like swiotlb.
    const s = await m.cpu.vmcall(HC.MAP_GPA_RANGE, SCRATCH, 1n, BigInt(KVM_MAP_GPA_RANGE.DECRYPTED));
    if (s !== 0) throw new Error(`initial share failed: ${s}`);
  }
  return m;
}

/** What the invariants compare against: the state before a step. */
interface Snapshot {
  eptGen: number;
  attrGen: number;
  pins: [bigint, bigint];
  crs: [bigint, bigint];
}

/** The invariants of one machine; each check throws an Error naming the step and the breach. */
class Oracle {
  readonly #m: SyntheticMachine;
  readonly #immutable = new Map<number, number>();
  readonly #kernelBytes: Uint8Array[];
  #scannedAt = -1;

  constructor(m: SyntheticMachine) {
    this.#m = m;
    this.#kernelBytes = LOCKED_KERNEL.map((a) => m.vmm.core.memory.read(gpa(a), 4096));
  }

  snap(): Snapshot {
    const core = this.#m.vmm.core;
    const cpu = core.vcpus[0]!;
    return {
      eptGen: core.ept.generation,
      attrGen: core.memoryAttributes.generation,
      pins: [core.pins.get(0), core.pins.get(4)],
      crs: [cpu.readCr(0), cpu.readCr(4)],
    };
  }

  /** W^X over every frame, and no IMMUTABLE frame changed (only when the EPT changed). */
  ept(where: string): void {
    const ept = this.#m.vmm.core.ept;
    if (ept.generation === this.#scannedAt) return;
    this.#scannedAt = ept.generation;
    for (let f = 0; f < FRAMES; f++) {
      const p = ept.get(gfn(f));
      if (p & EPT_W && p & (EPT_XS | EPT_XU)) throw new Error(`${where}: frame ${f} is writable and executable (EPT 0x${p.toString(16)})`);
      if (p & EPT_IMMUTABLE && !this.#immutable.has(f)) this.#immutable.set(f, p & ~EPT_FROZEN);
    }
    for (const [f, p] of this.#immutable) {
      if ((ept.get(gfn(f)) & ~EPT_FROZEN) !== p)
        throw new Error(`${where}: IMMUTABLE frame ${f} changed from 0x${p.toString(16)} to 0x${ept.get(gfn(f)).toString(16)}`);
    }
  }

  /** Pins only grow; a pinned bit that was set stays set. */
  pins(before: Snapshot, where: string): void {
    const now = this.snap();
    for (const k of [0, 1] as const) {
      if ((before.pins[k] & ~now.pins[k]) !== 0n) throw new Error(`${where}: a pin of CR${k * 4} was cleared`);
      if ((before.crs[k] & before.pins[k] & ~now.crs[k]) !== 0n) throw new Error(`${where}: a pinned, set bit of CR${k * 4} was cleared`);
    }
  }

  /** No byte of the locked kernel changed. */
  kernelBytes(where: string): void {
    LOCKED_KERNEL.forEach((a, k) => {
      if (!this.#m.vmm.core.memory.read(gpa(a), 4096).every((b, j) => b === this.#kernelBytes[k]![j]))
        throw new Error(`${where}: the locked kernel at 0x${a.toString(16)} changed`);
    });
  }
}

let hypercalls = 0;
/** Outcomes per call kind, to show the fuzzer reaches the accepting paths, not only EINVAL. */
const outcomes = new Map<string, number>();
const count = (key: string): void => void outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

async function runOne(run: Run): Promise<void> {
  const m = await lockedMachine(run.protectedMemory);
  const core = m.vmm.core;
  const cpu = core.vcpus[0]!;
  const oracle = new Oracle(m);
  oracle.ept('after the initial lock');

  for (const [i, step] of run.steps.entries()) {
    const op = step.op;
    const where = `step ${i} (${op.kind}${op.kind === 'other' ? ` nr ${op.nr}` : ''}, CPL ${step.cpl})`;
    const side = step.side;
    if (side?.kind === 'cr') {
      cpu.setCpl(0);
      const before = oracle.snap();
      cpu.writeCr(side.cr, cpu.readCr(side.cr) ^ side.flip);
      oracle.pins(before, `${where}, CR${side.cr} write`);
    } else if (side?.kind === 'dma') {
      const len = side.sectors * 512;
      core.memory.write(
        gpa(SCRATCH),
        encodeVirtioBlkRequest({ type: side.type, sector: side.sector, dataGpa: side.dataGpa, dataLen: len, statusGpa: side.statusGpa }),
      );
      const permsBefore: number[] = [];
      const data = tryGpa(side.dataGpa);
      if (!isAddrError(data) && core.memory.contains(data, len))
        for (let a = side.dataGpa & ~0xfffn; a < side.dataGpa + BigInt(len); a += 0x1000n) permsBefore.push(core.ept.get(gpaToGfn(gpa(a))));
      const r = m.vmm.devices.disk.notify(SCRATCH);
      count(`disk ${r.ok ? r.value.type : r.error.kind}`);
      if (r.ok && r.value.type === 'read' && permsBefore.some((p) => !(p & EPT_W) || p & (EPT_IMMUTABLE | EPT_FROZEN)))
        throw new Error(`${where}: a disk read wrote into a page the guest may not write`);
      oracle.kernelBytes(`${where}, disk request`);
    }

    cpu.setCpl(step.cpl);
    const before = oracle.snap();
    let ret: number;
    try {
      if (op.kind === 'protect' && op.list) {
        core.memory.write(gpa(LIST_A), encodeList(op.list.entries, op.list.npages, op.list.next));
        core.memory.write(gpa(LIST_B), encodeList(op.list.second, null, 0n));
      }
      ret =
        op.kind === 'lock-cr'
          ? await cpu.vmcall(HC.LOCK_CR_UPDATE, op.a0, op.a1, op.a2)
          : op.kind === 'protect'
            ? await cpu.vmcall(HC.PROTECT_MEMORY, op.a0)
            : op.kind === 'map-gpa'
              ? await cpu.vmcall(HC.MAP_GPA_RANGE, op.a0, op.a1, op.a2)
              : await cpu.vmcall(op.nr, op.args[0], op.args[1], op.args[2], op.args[3]);
    } catch (e) {
      throw new Error(`${where}: an exception escaped the core: ${e instanceof Error ? e.stack : String(e)}`, { cause: e });
    }
    hypercalls++;
    count(`${op.kind === 'other' ? 'other' : op.kind}${step.cpl === 3 ? '@cpl3' : ''} ${statusName(ret)}`);

    // The return value.
    const version = (op.kind === 'lock-cr' || (op.kind === 'other' && op.nr === HC.LOCK_CR_UPDATE)) && ret === HEKI_ABI_VERSION;
    if (!(ret === 0 || version || KNOWN_NEGATIVE.has(ret))) throw new Error(`${where}: unexpected return value ${ret}`);
    if (ret === -KVM_STATUS.KVM_EFAULT || core.stopped !== undefined) throw new Error(`${where}: internal error, the VM stopped: ${core.stopped}`);
    if (step.cpl === 3 && ret !== -KVM_STATUS.KVM_EPERM) throw new Error(`${where}: a CPL 3 call gave ${ret}`);
    if (op.kind === 'other' && step.cpl === 0) {
      const known = (Object.values(HC) as number[]).includes(op.nr);
      if (!known && ret !== -KVM_STATUS.KVM_ENOSYS) throw new Error(`${where}: an unknown number gave ${ret}`);
      if (op.nr >= HC.HEKI_END_BOOT && op.nr <= HC.HEKI_LOAD_CODE && ret !== -KVM_STATUS.KVM_EOPNOTSUPP)
        throw new Error(`${where}: gave ${ret} without a verifier`);
    }

    // CPL 3 and failing calls change nothing.
    const after = oracle.snap();
    if (
      (step.cpl === 3 || ret < 0) &&
      (after.eptGen !== before.eptGen || after.attrGen !== before.attrGen || after.pins[0] !== before.pins[0] || after.pins[1] !== before.pins[1])
    ) {
      throw new Error(`${where}: a call that returned ${ret} changed state`);
    }
    oracle.pins(before, where);
    if (op.kind === 'map-gpa' && ret === 0) {
      const priv = (op.a2 & BigInt(KVM_MAP_GPA_RANGE.ENCRYPTED)) !== 0n;
      for (let f = Number(op.a0 >> 12n); f < Number((op.a0 >> 12n) + op.a1); f++)
        if (core.memoryAttributes.isPrivate(gfn(f)) !== priv) throw new Error(`${where}: frame ${f} has the wrong attribute`);
    }
    oracle.ept(where);
  }
}

test('hypercall ABI fuzz: W^X, pins, IMMUTABLE and return values hold after every call', async (t) => {
  hypercalls = 0;
  outcomes.clear();
  const runs = abiRuns();
  await checkProperty(t, 'hypercall ABI', fc.asyncProperty(runArb, runOne), runs);
  t.log(
    `${hypercalls} hypercalls; outcomes: ${[...outcomes]
      .sort()
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ')}`,
  );
  t.true(hypercalls >= runs * CALLS_PER_RUN, `${hypercalls} hypercalls ran`);
});

test('the oracle catches what it must: a W+X frame, a changed IMMUTABLE frame, a cleared pin, a changed kernel byte', async (t) => {
  const m = await lockedMachine(false);
  const core = m.vmm.core;
  const oracle = new Oracle(m);
  oracle.ept('start');
  const data = Number(LAYOUT.data >> 12n);
  core.ept.set(gfn(data), EPT_W | EPT_XS);
  t.throws(() => oracle.ept('w+x'), { message: /frame \d+ is writable and executable/ });
  core.ept.set(gfn(data), EPT_W);
  core.ept.set(gpaToGfn(gpa(LAYOUT.text)), EPT_IMMUTABLE | EPT_W);
  t.throws(() => oracle.ept('immutable'), { message: /IMMUTABLE frame \d+ changed/ });
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n), 0);
  const before = oracle.snap();
  core.pins.resetByVmm();
  t.throws(() => oracle.pins(before, 'unpin'), { message: /a pin of CR4 was cleared/ });
  core.memory.write(gpa(LAYOUT.rodata), Uint8Array.of(0x41));
  t.throws(() => oracle.kernelBytes('write'), { message: /the locked kernel at 0x300000 changed/ });
  t.is(CR0.WP & PINNABLE[0], CR0.WP);
});
