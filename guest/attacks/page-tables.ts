/**
 * Attacks through the guest's own page tables, which the attacker owns: remapping a kernel
 * text address to an attacker page, writing a text page through a fresh writable alias,
 * replacing the page-directory entry over .text by a writable 2 MiB page, and switching CR3
 * to a forged page-table tree that maps text writable. The page walk obeys the attacker; the
 * EPT, which judges the frame reached, must not: an `ept-violation` exit and #PF
 * (ept-violation), and the text unchanged.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import { PTE, PTE_ADDR_MASK, PageTableWriter } from '../mm/page-table-writer.ts';
import type { FrameAllocator } from '../mm/page-table-writer.ts';
import { cpuPhysPort } from '../kernel/phys-port.ts';
import type { GuestCpu, GuestOutcome } from '../../shared/guest-cpu.ts';
import type { Attack } from './attack.ts';
import {
  AttackSetupError,
  SHELLCODE,
  WRITE_FLAGS,
  allocFrame,
  bytesHex,
  editLeaf,
  faultShort,
  hex,
  leafOf,
  mapAlias,
  mustRead,
  mustWrite,
  outcomeText,
  physOf,
  sameBytes,
  symbol,
  writeEntry,
} from './primitives.ts';

/** The function whose text these attacks go after. */
export const TEXT_VICTIM = 'commit_creds';
/** Offset into it of the byte the write attacks change. */
export const TEXT_VICTIM_OFFSET = 0x10n;

const TEXT_WRITE_STOP = 'ept-violation exit (kernel write) and #PF (ept-violation); the text byte unchanged';

/** Writes one byte (not `before`) at `va` after the page tables were bent; notes the outcome in `steps`. */
function writeByte(cpu: GuestCpu, va: bigint, before: number, steps: string[]): GuestOutcome<void> {
  const payload = Uint8Array.of(before === 0xcc ? 0x90 : 0xcc);
  const w = cpu.write(gvaFromRegister(va), payload);
  steps.push(`write ${bytesHex(payload)} at ${hex(va)}: ${outcomeText(w)}`);
  return w;
}

/** The page-table attacks. */
export const PAGE_TABLE_ATTACKS: readonly Attack[] = [
  {
    name: 'remap-text-to-attacker-page',
    title: "point the PTE of commit_creds's text page at an attacker page holding shellcode, then call it",
    expectedStop: 'the fetch reaches the attacker frame, which is not executable: ept-violation exit (kernel fetch) and #PF (ept-violation)',
    run({ kernel, cpu }) {
      const target = symbol(kernel, TEXT_VICTIM);
      const page = target & ~0xfffn;
      const evil = allocFrame(kernel);
      // Copy the genuine page, then put the shellcode at the function's entry.
      mustWrite(cpu, evil.va, mustRead(cpu, page, 4096));
      mustWrite(cpu, evil.va + (target - page), SHELLCODE);
      const e = editLeaf(kernel, page, (x) => (x & ~PTE_ADDR_MASK) | evil.pa);
      if (!e.ok) return Promise.resolve({ stopped: true, stop: faultShort(e.fault), detail: `editing the PTE: ${outcomeText(e)}` });
      const f = cpu.fetch(gvaFromRegister(target), SHELLCODE.length);
      const detail = `PTE of ${hex(page)} (entry at ${hex(e.value.slot)}) now points at attacker frame ${hex(evil.pa)}; fetch at ${hex(target)}: ${f.ok ? `fetched ${bytesHex(f.value)}` : outcomeText(f)}`;
      if (f.ok)
        return Promise.resolve({
          stopped: false,
          stop: sameBytes(f.value, SHELLCODE) ? 'nothing: the shellcode ran in place of commit_creds' : 'nothing: the fetch succeeded',
          detail,
        });
      return Promise.resolve({ stopped: true, stop: faultShort(f.fault), detail });
    },
  },
  {
    name: 'alias-write-protected-page',
    title: "map commit_creds's text frame again at a fresh vmalloc address, writable, and write through it",
    expectedStop: TEXT_WRITE_STOP,
    run({ kernel, cpu }) {
      const target = symbol(kernel, TEXT_VICTIM) + TEXT_VICTIM_OFFSET;
      const before = mustRead(cpu, target, 1)[0]!;
      const alias = mapAlias(kernel, physOf(kernel, target), WRITE_FLAGS);
      const steps = [`writable alias ${hex(alias)} of the frame behind ${hex(target)}`];
      const w = writeByte(cpu, alias, before, steps);
      const after = mustRead(cpu, target, 1)[0]!;
      steps.push(`byte at ${hex(target)} was ${hex(before)}, is ${hex(after)}`);
      const stopped = !w.ok && after === before;
      return Promise.resolve({ stopped, stop: stopped && !w.ok ? faultShort(w.fault) : 'nothing: the text byte changed', detail: steps.join('; ') });
    },
  },
  {
    name: 'pte-make-text-writable',
    title: 'replace the page-directory entry over commit_creds by a writable 2 MiB page of the same frames, then write',
    expectedStop: TEXT_WRITE_STOP,
    run({ kernel, cpu }) {
      const target = symbol(kernel, TEXT_VICTIM) + TEXT_VICTIM_OFFSET;
      const before = mustRead(cpu, target, 1)[0]!;
      const base = target & ~0x1f_ffffn;
      const pa = physOf(kernel, base);
      if ((pa & 0x1f_ffffn) !== 0n) throw new AttackSetupError(`${hex(base)} is not backed by a 2 MiB-aligned frame range`);
      const slot = kernel.mm.pageTables.entryAddress(base, 2);
      if (typeof slot !== 'bigint') throw new AttackSetupError(`no page-directory entry for ${hex(base)}`);
      const w0 = writeEntry(kernel, slot, pa | PTE.P | PTE.RW | PTE.PS | PTE.G);
      if (!w0.ok) return Promise.resolve({ stopped: true, stop: faultShort(w0.fault), detail: `writing the page-directory entry: ${outcomeText(w0)}` });
      cpu.invlpg(gvaFromRegister(target));
      const leaf = leafOf(kernel, target);
      const steps = [`page-directory entry at ${hex(slot)} now maps ${hex(base)} as a writable 2 MiB page of ${hex(pa)} (level ${leaf.level})`];
      const w = writeByte(cpu, target, before, steps);
      const after = mustRead(cpu, target, 1)[0]!;
      steps.push(`byte at ${hex(target)} was ${hex(before)}, is ${hex(after)}`);
      const stopped = !w.ok && after === before;
      return Promise.resolve({ stopped, stop: stopped && !w.ok ? faultShort(w.fault) : 'nothing: the text byte changed', detail: steps.join('; ') });
    },
  },
  {
    name: 'switch-cr3-to-forged-tables',
    title: 'build a new page-table tree mapping commit_creds writable and load it into CR3, then write',
    expectedStop: `mov to CR3 is allowed (the guest owns its tables); the write: ${TEXT_WRITE_STOP}`,
    run({ kernel, cpu }) {
      const target = symbol(kernel, TEXT_VICTIM) + TEXT_VICTIM_OFFSET;
      const before = mustRead(cpu, target, 1)[0]!;
      const pa = physOf(kernel, target);
      const frames: FrameAllocator = { allocTableFrame: () => allocFrame(kernel).pa };
      const root = allocFrame(kernel).pa;
      const forged = new PageTableWriter(root, cpuPhysPort(cpu, true), frames);
      const m = forged.map(target & ~0xfffn, pa & ~0xfffn, PTE.RW | PTE.G | PTE.NX);
      if (m) throw new AttackSetupError(`cannot build the forged tables: ${m.kind}`);
      const oldCr3 = cpu.readCr(3);
      const steps: string[] = [`forged root ${hex(root)} maps ${hex(target & ~0xfffn)} RW to ${hex(pa & ~0xfffn)}`];
      const sw = cpu.writeCr(3, root);
      steps.push(`mov ${hex(root)} to CR3: ${outcomeText(sw)}`);
      // The kernel's text mappings are global (CR4.PGE), so they survive the CR3 switch in the
      // TLB; drop the target's entry so the write walks the forged tables.
      cpu.invlpg(gvaFromRegister(target));
      const w = sw.ok ? writeByte(cpu, target, before, steps) : sw;
      const back = cpu.writeCr(3, oldCr3);
      if (!back.ok) throw new AttackSetupError(`cannot restore CR3: ${outcomeText(back)}`);
      const after = mustRead(cpu, target, 1)[0]!;
      steps.push(`CR3 restored; byte at ${hex(target)} was ${hex(before)}, is ${hex(after)}`);
      const stopped = !w.ok && after === before;
      return Promise.resolve({ stopped, stop: stopped && !w.ok ? faultShort(w.fault) : 'nothing: the text byte changed', detail: steps.join('; ') });
    },
  },
];
