/**
 * Raw hypercalls an attacker issues itself: numbers the ABI does not define, malformed
 * KVM_HC_PROTECT_MEMORY page lists that ask for kernel text to become writable (unaligned,
 * looping, oversized, reversed, outside memory, unknown bits, W+X), a well-formed request to
 * unlock immutable text, and a request to make a data page executable after boot. The core
 * must refuse each (-KVM_ENOSYS, -KVM_EINVAL, -KVM_EPERM) and change nothing: the attacker
 * checks by writing to the text and fetching the data page.
 */
import { HC, KVM_STATUS, MEM_ATTR, isHypercallNr, statusName } from '../../shared/abi.ts';
import { PAGE_LIST_ENTRY_SIZE, PAGE_LIST_HEADER_SIZE } from '../../shared/page-list.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { Attack } from './attack.ts';
import { executeAt, overwriteProtectedByte } from './exploits.ts';
import { SHELLCODE, allocContiguous, allocFrame, hex, hypercallText, mustWrite, physOf, symbol, u64le } from './primitives.ts';

/**
 * Hypercall numbers the ABI does not define: 0, just past the highest defined number, further
 * out, and the top of the range. Computed from shared/abi.ts, so that a hypercall added later
 * never turns this attack into a call of it.
 */
export const UNKNOWN_HYPERCALLS: readonly number[] = (() => {
  const top = Math.max(...Object.values(HC));
  return [0, top + 1, top + 77, 999, 0x7fff_ffff].filter((n, i, all) => !isHypercallNr(n) && all.indexOf(n) === i);
})();

/** A guest-physical address far beyond any guest's memory. */
const FAR = 1n << 50n;

interface ListEntry {
  readonly pa: bigint;
  readonly epa: bigint;
  readonly permissions: bigint;
}

/** Encodes one list node; `npages` may lie about the entries that follow. */
function listNode(nextPa: bigint, entries: readonly ListEntry[], npages = BigInt(entries.length)): Uint8Array {
  const page = new Uint8Array(4096);
  page.set(u64le(0n), 0);
  page.set(u64le(nextPa), 8);
  page.set(u64le(npages), 16);
  entries.forEach((e, i) => {
    const off = PAGE_LIST_HEADER_SIZE + i * PAGE_LIST_ENTRY_SIZE;
    page.set(u64le(e.pa), off);
    page.set(u64le(e.epa), off + 8);
    page.set(u64le(e.permissions), off + 16);
  });
  return page;
}

/** Writes `node` into a fresh frame and returns its physical address. */
function placeNode(kernel: GuestKernel, build: (pa: bigint) => Uint8Array): bigint {
  const f = allocContiguous(kernel, 1);
  mustWrite(kernel.cpu, f.va, build(f.pa));
  return f.pa;
}

/** The frame of the text page the attacks want writable. */
function textFrame(kernel: GuestKernel): { va: bigint; pa: bigint } {
  const va = symbol(kernel, 'commit_creds');
  return { va, pa: physOf(kernel, va) & ~0xfffn };
}

const RW = BigInt(MEM_ATTR.READ | MEM_ATTR.WRITE);

/** The hypercall attacks. */
export const HYPERCALL_ATTACKS: readonly Attack[] = [
  {
    name: 'unknown-hypercall',
    title: `issue hypercalls the ABI does not define (${UNKNOWN_HYPERCALLS.join(', ')}) with arguments pointing at kernel text`,
    expectedStop: '-KVM_ENOSYS for each, nothing changed',
    async run({ kernel, cpu }) {
      const text = textFrame(kernel);
      const rets: Array<[number, number]> = [];
      for (const nr of UNKNOWN_HYPERCALLS) rets.push([nr, await cpu.vmcall(nr, text.pa, 1n, RW, 0n)]);
      const write = overwriteProtectedByte(kernel, text.va + 0x10n, 'kernel .text');
      const detail = `${rets.map(([nr, r]) => `hypercall ${nr}: ${statusName(r)}`).join('; ')}; then ${write.detail}`;
      const stopped = rets.every(([, r]) => r === -KVM_STATUS.KVM_ENOSYS) && write.stopped;
      return {
        stopped,
        stop: stopped
          ? `${statusName(-KVM_STATUS.KVM_ENOSYS)} for all ${rets.length} hypercalls`
          : `nothing: ${
              rets
                .filter(([, r]) => r !== -KVM_STATUS.KVM_ENOSYS)
                .map(([nr, r]) => `hypercall ${nr} returned ${statusName(r)}`)
                .join(', ') || write.stop
            }`,
        detail,
      };
    },
  },
  {
    name: 'malformed-page-list',
    title: 'KVM_HC_PROTECT_MEMORY with malformed page lists asking for kernel text to become R|W',
    expectedStop: '-KVM_EINVAL for every malformed list (validated whole before anything changes); the text stays read-only',
    async run({ kernel, cpu }) {
      const t = textFrame(kernel);
      const one = (e: Partial<ListEntry>): ListEntry => ({ pa: t.pa, epa: t.pa + 0x1000n, permissions: RW, ...e });
      const cases: Array<[string, () => bigint]> = [
        ['list not page-aligned', () => placeNode(kernel, () => listNode(0n, [one({})])) + 8n],
        ['list outside guest memory', () => FAR],
        ['chain loops onto itself', () => placeNode(kernel, (pa) => listNode(pa, [one({})]))],
        ['npages claims 170 entries', () => placeNode(kernel, () => listNode(0n, [one({})], 170n))],
        ['range not page-aligned', () => placeNode(kernel, () => listNode(0n, [one({ pa: t.pa + 8n })]))],
        ['range reversed', () => placeNode(kernel, () => listNode(0n, [one({ pa: t.pa + 0x1000n, epa: t.pa })]))],
        ['range outside guest memory', () => placeNode(kernel, () => listNode(0n, [one({ epa: FAR })]))],
        ['unknown attribute bit 5', () => placeNode(kernel, () => listNode(0n, [one({ permissions: RW | (1n << 5n) })]))],
        ['W together with X', () => placeNode(kernel, () => listNode(0n, [one({ permissions: RW | BigInt(MEM_ATTR.EXEC) })]))],
      ];
      const rets: Array<[string, number]> = [];
      for (const [what, head] of cases) rets.push([what, await cpu.vmcall(HC.PROTECT_MEMORY, head())]);
      const write = overwriteProtectedByte(kernel, t.va + 0x10n, 'kernel .text');
      const detail = `${rets.map(([w, r]) => `${w}: ${statusName(r)}`).join('; ')}; then ${write.detail}`;
      const bad = rets.filter(([, r]) => r !== -KVM_STATUS.KVM_EINVAL);
      const stopped = bad.length === 0 && write.stopped;
      return {
        stopped,
        stop: stopped
          ? `${statusName(-KVM_STATUS.KVM_EINVAL)} for all ${rets.length} lists`
          : `nothing: ${bad.map(([w, r]) => `${w} returned ${statusName(r)}`).join(', ') || write.stop}`,
        detail,
      };
    },
  },
  {
    name: 'protect-memory-unlock-text',
    title: 'KVM_HC_PROTECT_MEMORY with a well-formed list giving an immutable kernel text page R|W',
    expectedStop: '-KVM_EPERM with a heki-denial exit of kind immutable naming the frame; the text stays read-only',
    async run({ kernel, cpu }) {
      const t = textFrame(kernel);
      const head = placeNode(kernel, () => listNode(0n, [{ pa: t.pa, epa: t.pa + 0x1000n, permissions: RW }]));
      const ret = await cpu.vmcall(HC.PROTECT_MEMORY, head);
      const write = overwriteProtectedByte(kernel, t.va + 0x10n, 'kernel .text');
      const detail = `PROTECT_MEMORY [${hex(t.pa)}, +4 KiB) R|W: ${hypercallText(HC.PROTECT_MEMORY, ret)}; then ${write.detail}`;
      const stopped = ret !== 0 && write.stopped;
      return { stopped, stop: stopped ? hypercallText(HC.PROTECT_MEMORY, ret) : `nothing: ${ret === 0 ? 'the text frame was unlocked' : write.stop}`, detail };
    },
  },
  {
    name: 'protect-memory-widen-data-exec',
    title: 'KVM_HC_PROTECT_MEMORY giving an attacker data page holding shellcode R|X after boot',
    expectedStop: '-KVM_EPERM (after boot PROTECT_MEMORY may only take permissions away); the page stays non-executable',
    async run({ kernel, cpu }) {
      const page = allocFrame(kernel);
      mustWrite(cpu, page.va, SHELLCODE);
      const head = placeNode(kernel, () => listNode(0n, [{ pa: page.pa, epa: page.pa + 0x1000n, permissions: BigInt(MEM_ATTR.READ | MEM_ATTR.EXEC) }]));
      const ret = await cpu.vmcall(HC.PROTECT_MEMORY, head);
      const fetch = executeAt(kernel, page.va, 'the data page', false);
      const detail = `PROTECT_MEMORY [${hex(page.pa)}, +4 KiB) R|X: ${hypercallText(HC.PROTECT_MEMORY, ret)}; then ${fetch.detail}`;
      const stopped = ret !== 0 && fetch.stopped;
      return {
        stopped,
        stop: stopped ? hypercallText(HC.PROTECT_MEMORY, ret) : `nothing: ${ret === 0 ? 'the data page was made executable' : fetch.stop}`,
        detail,
      };
    },
  },
];
