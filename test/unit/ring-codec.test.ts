/**
 * The verification ring's codec (shared/ring/): patch records, the shared-memory ring, request
 * and verdict messages. Round trips give back what went in; every malformed record or
 * message is refused with an error naming the problem, never a throw.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import { hex } from '../../shared/addr.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import {
  CTL,
  CTL_BYTES,
  ITEM_RECORD,
  PATCH_RECORD,
  PR,
  REQUEST_HEADER,
  RQ,
  VD,
  VERDICT_HEADER,
  WRAP_MAGIC,
  PatchRecords,
  SpscRing,
  expandItems,
  readRequest,
  readVerdict,
  writeParked,
  writeTextPatchRequest,
  writeUnloadRequest,
  writeVerdict,
  type PackedVerdict,
} from '../../shared/ring/index.ts';

/** A request ring and a verdict ring of `bytes` each, over fresh shared memory. */
function rings(bytes = 1 << 16): { req: SpscRing; ver: SpscRing } {
  const sab = new SharedArrayBuffer(CTL_BYTES + 2 * bytes);
  const ctl = new Int32Array(sab, 0, CTL_BYTES / 4);
  return {
    req: new SpscRing(sab, CTL_BYTES, bytes, ctl, CTL.REQ_HEAD, CTL.REQ_TAIL),
    ver: new SpscRing(sab, CTL_BYTES + bytes, bytes, ctl, CTL.VER_HEAD, CTL.VER_TAIL),
  };
}

const vmBytes = (s: string) => new TextEncoder().encode(s);

const items: PatchItem[] = [
  {
    kind: 'ftrace',
    site: 0xffffffff81000100n,
    oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
    newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4),
    currentBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
  },
  {
    kind: 'jump-label',
    site: 0xffffffff81000300n,
    oldBytes: Uint8Array.of(0x66, 0x90),
    newBytes: Uint8Array.of(0xeb, 0x3e),
    currentBytes: Uint8Array.of(0x66, 0x90),
  },
  { kind: 'kprobe', site: 0x1234n, oldBytes: Uint8Array.of(0x55), newBytes: Uint8Array.of(0xcc), currentBytes: Uint8Array.of(0x55) },
  {
    kind: 'static-call',
    site: 0xffff_ffff_ffff_fff0n,
    oldBytes: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
    newBytes: Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1),
    currentBytes: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  },
];

test('patch records: items in, the same items out; sites print as hex() prints them', (t) => {
  const r = PatchRecords.fromItems(items);
  if (typeof r === 'string') return t.fail(r);
  t.is(r.count, items.length);
  t.is(r.validate(), undefined);
  t.deepEqual(r.toItems(), items);
  for (let i = 0; i < items.length; i++) t.is(r.siteHex(i), hex(items[i]!.site));
  t.deepEqual(r.kindCounts(), [1, 1, 1, 1, 0]);
});

test('property: any encodable batch survives records unchanged', async (t) => {
  const item = fc.integer({ min: 1, max: 8 }).chain((len) =>
    fc.record({
      kind: fc.constantFrom('ftrace', 'jump-label', 'static-call', 'kprobe') as fc.Arbitrary<PatchItem['kind']>,
      site: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      oldBytes: fc.uint8Array({ minLength: len, maxLength: len }),
      newBytes: fc.uint8Array({ minLength: len, maxLength: len }),
      currentBytes: fc.uint8Array({ minLength: len, maxLength: len }),
    }),
  );
  await checkProperty(
    t,
    'property: any encodable batch survives records unchanged',
    fc.property(fc.array(item, { maxLength: 20 }), (list) => {
      const r = PatchRecords.fromItems(list);
      if (typeof r === 'string') return false;
      return (
        r.validate() === undefined &&
        JSON.stringify(r.toItems(), (_k, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? [...v] : v)) ===
          JSON.stringify(list, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? [...v] : v)) &&
        list.every((it, i) => r.siteHex(i) === hex(it.site))
      );
    }),
    scaledRuns(100),
  );
});

test('patch records refuse what a record cannot hold, naming it (such a batch goes over comlink)', (t) => {
  const long = { ...items[0]!, oldBytes: new Uint8Array(9), newBytes: new Uint8Array(9), currentBytes: new Uint8Array(9) };
  t.regex(String(PatchRecords.fromItems([long])), /item 0: not 1\.\.8 bytes of equal length/);
  t.regex(String(PatchRecords.fromItems([{ ...items[0]!, kind: 'bogus' as never }])), /item 0: unknown kind/);
  t.regex(String(PatchRecords.fromItems([{ ...items[0]!, newBytes: Uint8Array.of(1) }])), /not 1\.\.8 bytes of equal length/);
  t.regex(String(PatchRecords.fromItems([null as never])), /item 0: not an object/);
});

test('record validation names the record and the field', (t) => {
  const bad = (f: (b: Uint8Array) => void): string | undefined => {
    const r = PatchRecords.fromItems(items) as PatchRecords;
    f(r.bytes);
    return r.validate();
  };
  t.is(
    bad((b) => (b[PATCH_RECORD + PR.KIND] = 9)),
    'record 1: unknown patch kind code 9',
  );
  t.is(
    bad((b) => (b[PR.LEN] = 0)),
    'record 0: patch length 0 is not 1..8',
  );
  t.is(
    bad((b) => (b[2 * PATCH_RECORD + PR.LEN] = 9)),
    'record 2: patch length 9 is not 1..8',
  );
  t.is(
    bad((b) => (b[PR.PAD + 3] = 1)),
    'record 0: reserved byte 13 is not zero',
  );
  t.is(
    bad((b) => (b[PATCH_RECORD + PR.NEW + 5] = 1)),
    'record 1: new byte 5 lies beyond the patch length 2 and is not zero',
  );
  t.is(
    bad((b) => (b[2 * PATCH_RECORD + PR.CUR + 1] = 1)),
    'record 2: current byte 1 lies beyond the patch length 1 and is not zero',
  );
});

test('the ring: messages come out in order; one that does not fit before the end wraps behind a marker', (t) => {
  const { req } = rings(4096);
  const sizes = [1024, 1024, 1024, 1536];
  const seen: number[] = [];
  for (const [k, size] of sizes.entries()) {
    const off = req.reserve(size);
    t.true(off >= 0, `message ${k} fits`);
    req.u32[off >>> 2] = 1000 + k;
    req.commit();
    if (k === 2) {
      // Free the first two so the fourth can wrap to the start.
      for (let j = 0; j < 2; j++) {
        const o = req.peek();
        seen.push(req.u32[o >>> 2] as number);
        req.release(sizes[j]!);
      }
    }
  }
  let off: number;
  let j = 2;
  while ((off = req.peek()) >= 0) {
    seen.push(req.u32[off >>> 2] as number);
    req.release(sizes[j++]!);
  }
  t.deepEqual(seen, [1000, 1001, 1002, 1003]);
  t.is(req.used, 0);
  t.is(req.u32[3072 >>> 2], WRAP_MAGIC, 'the wrap marker is where the tail of the ring went unused');
});

test('the ring refuses a message with no room, and changes nothing', (t) => {
  const { req } = rings(4096);
  t.is(req.reserve(4096 + 8), -1);
  t.is(req.reserve(12), -1, 'sizes are multiples of 8');
  t.true(req.reserve(4000) >= 0);
  req.commit();
  t.is(req.reserve(200), -1);
  t.is(req.used, 4000);
  t.is(req.reserve(96, 8), -1, 'the space kept free counts');
  t.true(req.reserve(96) >= 0);
});

test('requests: a text-patch batch and a module unload round-trip', (t) => {
  const { req } = rings();
  const records = PatchRecords.fromItems(items) as PatchRecords;
  t.true(writeTextPatchRequest(req, 41, vmBytes('vm-é'), records));
  t.true(writeUnloadRequest(req, 42, vmBytes('vm0'), vmBytes('kvm_intel')));
  const a = readRequest(req, req.peek());
  if (!a.ok) return t.fail(a.error);
  t.is(a.request.kind, 'text-patch');
  t.is(a.request.id, 41);
  t.is(a.request.vm, 'vm-é');
  if (a.request.kind === 'text-patch') t.deepEqual(a.request.records.toItems(), items);
  req.release(a.size);
  const b = readRequest(req, req.peek());
  if (!b.ok) return t.fail(b.error);
  t.deepEqual(b.request, { kind: 'module-unload', id: 42, vm: 'vm0', name: 'kvm_intel' });
  req.release(b.size);
  t.is(req.peek(), -1);
});

test('a malformed request is refused with the problem named, and the id when the header has one', (t) => {
  const records = PatchRecords.fromItems(items) as PatchRecords;
  const broken = (f: (r: SpscRing, off: number) => void) => {
    const { req } = rings();
    t.true(writeTextPatchRequest(req, 7, vmBytes('vm0'), records));
    const off = req.peek();
    f(req, off);
    return readRequest(req, off);
  };
  t.like(
    broken((r, o) => (r.u32[o >>> 2] = 0xdeadbeef)),
    { ok: false, id: 7, error: 'bad request magic 0xdeadbeef', size: undefined },
  );
  t.like(
    broken((r, o) => (r.u8[o + RQ.VERSION] = 9)),
    { ok: false, id: 7, error: 'protocol version 9 is not 1' },
  );
  t.like(
    broken((r, o) => (r.u8[o + RQ.KIND] = 77)),
    { ok: false, id: 7, error: 'unknown request kind code 77' },
  );
  t.like(
    broken((r, o) => (r.u32[(o + RQ.COUNT) >>> 2] = 3)),
    { ok: false, id: 7, error: 'message size 200 does not hold 3 records of 40 bytes' },
  );
  t.like(
    broken((r, o) => (r.u32[(o + RQ.SIZE) >>> 2] = 12)),
    { ok: false, error: `request size 12 is not a multiple of 8 in ${REQUEST_HEADER}..${REQUEST_HEADER + 8 + 4 * PATCH_RECORD}`, size: undefined },
  );
  t.like(
    broken((r, o) => (r.u32[(o + RQ.RSV1) >>> 2] = 1)),
    { ok: false, error: 'reserved request header words are not zero' },
  );
  t.like(
    broken((r, o) => (r.f64[(o + RQ.ID) >>> 3] = 1.5)),
    { ok: false, id: -1, error: 'request id 1.5 is not a non-negative integer' },
  );
  t.like(
    broken((r, o) => (r.u8[o + REQUEST_HEADER + 8 + PATCH_RECORD + PR.KIND] = 5)),
    { ok: false, id: 7, error: 'record 1: unknown patch kind code 5', size: REQUEST_HEADER + 8 + 4 * PATCH_RECORD },
  );
  t.like(
    broken((r, o) => (r.u8[o + REQUEST_HEADER + 3] = 1)),
    { ok: false, error: 'vm name padding is not zero' },
  );
});

/** A packed verdict for `items`: the first allowed by template, the others denied by text. */
function packed(id: number, n: number): PackedVerdict {
  const ok = new Uint8Array(n).fill(0);
  ok[0] = 1;
  const template = new Int32Array(n).fill(-1);
  template[0] = 0;
  const text = Array.from({ length: n }, (_, i) => (i === 0 ? undefined : `ftrace: item ${i} dénied`));
  return {
    id,
    ok: false,
    reason: `${n - 1} of ${n} items denied; first: ftrace: item 1 dénied`,
    plugins: ['ftrace', 'kprobe'],
    items: { count: n, ok, template, text, templates: [{ prefix: 'ftrace: ftrace site ', suffix: ' (kernel) -> NOP' }] },
  };
}

test('verdicts: reasons by template and by text come back as the protocol items', (t) => {
  const { ver } = rings();
  const records = PatchRecords.fromItems(items) as PatchRecords;
  const v = packed(9, items.length);
  t.is(writeVerdict(ver, v), 'written');
  const r = readVerdict(ver, ver.peek(), { id: 9, items: items.length });
  if (!r.ok || r.parked) return t.fail(JSON.stringify(r));
  t.is(r.verdict.reason, v.reason);
  t.deepEqual(r.verdict.plugins, ['ftrace', 'kprobe']);
  t.deepEqual(
    expandItems(r.verdict.items!, (i) => records.siteHex(i)),
    [
      { ok: true, reason: 'ftrace: ftrace site 0xffffffff81000100 (kernel) -> NOP' },
      { ok: false, reason: 'ftrace: item 1 dénied' },
      { ok: false, reason: 'ftrace: item 2 dénied' },
      { ok: false, reason: 'ftrace: item 3 dénied' },
    ],
  );
  ver.release(r.size);
  t.true(writeParked(ver, 10));
  t.like(readVerdict(ver, ver.peek(), { id: 10, items: 4 }), { ok: true, parked: true });
});

test('a verdict the ring cannot carry is refused before anything is written', (t) => {
  const { ver } = rings(4096);
  t.is(writeVerdict(ver, { id: 1, ok: false, reason: 'x'.repeat(5000), plugins: [] }), 'too-large');
  const many = packed(2, 400);
  t.is(writeVerdict(ver, many), 'too-large', '400 texts do not fit 4 KiB');
  t.is(ver.used, 0);
  t.true(ver.reserve(3904) >= 0);
  ver.commit();
  t.is(writeVerdict(ver, packed(3, 4)), 'no-room', 'it fits the ring, not the room left now');
  t.is(ver.used, 3904);
});

test('a malformed or unexpected verdict is an error naming the problem', (t) => {
  const check = (expect: { id: number; items: number | undefined }, f: (r: SpscRing, off: number) => void = () => undefined) => {
    const { ver } = rings();
    writeVerdict(ver, packed(9, 4));
    const off = ver.peek();
    f(ver, off);
    const r = readVerdict(ver, off, expect);
    return r.ok ? 'ok' : r.error;
  };
  const itemsAt = (r: SpscRing, off: number) => off + VERDICT_HEADER + (((r.u32[(off + VD.STRINGS_LEN) >>> 2] as number) + 7) & ~7);
  t.is(check({ id: 9, items: 4 }), 'ok');
  t.is(check({ id: 8, items: 4 }), 'answer for request 9, not 8');
  t.is(check({ id: 9, items: 3 }), 'verdict has 4 items, the request had 3');
  t.is(check({ id: 9, items: undefined }), 'verdict has items, the request had none');
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u32[o >>> 2] = 1)),
    'bad verdict magic 0x1',
  );
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u8[o + VD.FLAGS] = 0x84)),
    'unknown verdict flags 0x84',
  );
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u8[o + VD.VERSION] = 2)),
    'verdict protocol version 2 is not 1',
  );
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u8[itemsAt(r, o)] = 2)),
    'item 0: malformed record',
  );
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u32[(itemsAt(r, o) >>> 2) + 1] = 5)),
    'item 0: template 5 of 1',
  );
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u8[itemsAt(r, o) + ITEM_RECORD + 1] = 3)),
    'item 1: unknown reason form 3',
  );
  t.is(
    check({ id: 9, items: 4 }, (r, o) => (r.u32[(o + VD.SIZE) >>> 2] = 1 << 20)),
    `verdict size ${1 << 20} is not a multiple of 8 in 40..${(() => {
      const { ver } = rings();
      writeVerdict(ver, packed(9, 4));
      return ver.available();
    })()}`,
  );
  t.regex(
    check({ id: 9, items: 4 }, (r, o) => (r.u32[(o + VD.REASON_LEN) >>> 2] = 400)),
    /reason runs past the string area/,
  );
  const { ver } = rings();
  writeParked(ver, 3);
  ver.u32[(ver.peek() + VD.ITEMS) >>> 2] = 1;
  t.like(readVerdict(ver, ver.peek(), { id: 3, items: 1 }), { ok: false, error: 'a parked verdict marker carries data' });
});

test('patch records carry the smp-lock kind (a lock-prefix restore) and count it in its own slot', (t) => {
  const lock: PatchItem = {
    kind: 'smp-lock',
    site: 0xffffffff81000500n,
    oldBytes: Uint8Array.of(0x3e),
    newBytes: Uint8Array.of(0xf0),
    currentBytes: Uint8Array.of(0x3e),
  };
  const r = PatchRecords.fromItems([...items, lock]);
  if (typeof r === 'string') return t.fail(r);
  t.is(r.validate(), undefined);
  t.deepEqual(r.toItems(), [...items, lock]);
  t.deepEqual(r.kindCounts(), [1, 1, 1, 1, 1]);
});
