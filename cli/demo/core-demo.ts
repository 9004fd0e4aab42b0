/**
 * The core-level demo `heki demo` falls back to without the kernel fixtures: a short scenario
 * on the emulated KVM core alone. A guest boots on one
 * vCPU (its page tables written through the vCPU with paging off, then long mode), locks
 * itself as heki_late_init does, and then an attacker who owns the guest tries six classic
 * moves. Each is stopped by the core or the VMM, and the demo prints how.
 */
import { gpa, gva } from '../../shared/addr.ts';
import { Vmm } from '../../hypervisor/index.ts';
import { CR0, CR4, EFER, MSR } from '../../shared/x86/cpu.ts';
import { HC, MEM_ATTR, statusName } from '../../shared/abi.ts';
import { encodePageList } from '../../shared/page-list.ts';
import type { GuestCpu, GuestOutcome } from '../../shared/guest-cpu.ts';
import { BumpFrameAllocator, PTE, PageTableWriter, mapErrorMessage } from '../../guest/mm/page-table-writer.ts';
import { EXIT_NEGATIVE, EXIT_OK, type CliIo } from '../command.ts';

const TEXT = 0x20_0000n;
const RODATA = 0x30_0000n;
const DATA = 0x40_0000n;
const LIST = 0x50_0000n;
const KVA = 0xffff_ffff_8100_0000n;
const kva = (pa: bigint): bigint => KVA + (pa - TEXT);

interface Step {
  name: string;
  stopped: boolean;
  stop: string;
}

function describe(r: GuestOutcome<unknown>): Step['stop'] {
  if (r.ok) return 'NOT STOPPED';
  const f = r.fault;
  return f.kind === 'stopped' ? `VM stopped: ${f.detail}` : `#${f.vector} (${f.cause}): ${f.detail}`;
}

function must<T>(r: GuestOutcome<T>, what: string): T {
  if (!r.ok) throw new Error(`demo guest failed to ${what}: ${describe(r)}`);
  return r.value;
}

/** Boots and locks the demo guest; returns its vCPU. */
async function bootGuest(vmm: Vmm): Promise<GuestCpu> {
  const cpu = vmm.bootCpu;
  // Early boot: paging is off, so the guest reaches physical memory directly.
  must(cpu.write(gva(TEXT), Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3)), 'load text');
  must(cpu.write(gva(RODATA), new TextEncoder().encode('Linux version 6.1')), 'load rodata');
  const port = {
    readU64: (pa: bigint) => {
      const r = cpu.read(gva(pa), 8);
      return r.ok ? new DataView(r.value.buffer).getBigUint64(0, true) : undefined;
    },
    writeU64: (pa: bigint, v: bigint) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      return cpu.write(gva(pa), b).ok;
    },
  };
  const pt = new PageTableWriter(0x10_0000n, port, new BumpFrameAllocator(0x10_1000n, 0x20_0000n));
  for (const [pa, flags] of [
    [TEXT, PTE.G],
    [RODATA, PTE.G | PTE.NX],
    [DATA, PTE.G | PTE.NX | PTE.RW],
  ] as const) {
    const e = pt.map(kva(pa), pa, flags);
    if (e) throw new Error(mapErrorMessage(e));
  }
  must(cpu.wrmsr(MSR.EFER, EFER.LME | EFER.NXE | EFER.SCE), 'enable long mode');
  must(cpu.writeCr(4, CR4.PAE | CR4.PGE | CR4.SMEP | CR4.SMAP), 'set CR4');
  must(cpu.writeCr(3, pt.root), 'set CR3');
  must(cpu.writeCr(0, CR0.PE | CR0.PG | CR0.WP | CR0.ET | CR0.NE), 'enable paging');
  must(cpu.wrmsr(MSR.LSTAR, kva(TEXT)), 'set LSTAR');
  // heki_late_init: pin CRs, then lock the kernel image.
  if ((await cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, CR0.WP)) !== 0) throw new Error('CR0 lock refused');
  if ((await cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP | CR4.SMAP)) !== 0) throw new Error('CR4 lock refused');
  const I = MEM_ATTR.IMMUTABLE;
  vmm.core.memory.write(
    gpa(LIST),
    encodePageList(
      [
        { pa: TEXT, epa: TEXT + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC | I },
        { pa: RODATA, epa: RODATA + 0x1000n, permissions: MEM_ATTR.READ | I },
        { pa: DATA, epa: DATA + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE },
      ],
      0n,
    ),
  );
  const ret = await cpu.vmcall(HC.PROTECT_MEMORY, LIST);
  if (ret !== 0) throw new Error(`PROTECT_MEMORY failed: ${statusName(ret)}`);
  return cpu;
}

async function attacks(vmm: Vmm, cpu: GuestCpu): Promise<Step[]> {
  const steps: Step[] = [];
  const add = (name: string, r: GuestOutcome<unknown>) => steps.push({ name, stopped: !r.ok, stop: describe(r) });
  add('clear CR4.SMEP (with VME)', cpu.writeCr(4, (cpu.readCr(4) & ~CR4.SMEP) | CR4.VME));
  add('clear CR0.WP', cpu.writeCr(0, cpu.readCr(0) & ~CR0.WP));
  add('overwrite MSR_LSTAR', cpu.wrmsr(MSR.LSTAR, 0xffff_ffff_dead_0000n));
  // The attacker owns the page tables: it maps kernel text writable at another address.
  const port = {
    readU64: (pa: bigint) => vmm.core.memory.readU64(gpa(pa)),
    writeU64: (pa: bigint, v: bigint) => (vmm.core.memory.writeU64(gpa(pa), v), true),
  };
  const pt = new PageTableWriter(cpu.readCr(3), port, new BumpFrameAllocator(0x18_0000n, 0x20_0000n));
  pt.map(0xffff_c900_0000_0000n, TEXT, PTE.RW | PTE.NX);
  pt.map(0xffff_c900_0000_1000n, DATA, 0n);
  add('write kernel text through a writable alias', cpu.write(gva(0xffff_c900_0000_0000n), Uint8Array.of(0xcc)));
  add('execute a data page mapped executable', cpu.fetch(gva(0xffff_c900_0000_1000n), 1));
  const relock = await cpu.vmcall(HC.PROTECT_MEMORY, LIST + 0x1000n);
  steps.push({ name: 'hypercall from a garbage page list', stopped: relock < 0, stop: `returned ${statusName(relock)}` });
  return steps;
}

/** Runs the core-level demo; resolves to the exit code (0 when every attack was stopped). */
export async function runCoreDemo(io: CliIo, json: boolean): Promise<number> {
  const vmm = new Vmm({ memoryBytes: 64n << 20n });
  const cpu = await bootGuest(vmm);
  vmm.core.memory.write(gpa(LIST + 0x1000n), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff));
  const steps = await attacks(vmm, cpu);
  const stopped = steps.filter((s) => s.stopped).length;
  if (json) {
    io.out(`${JSON.stringify({ kernel: 'core', steps, stopped, total: steps.length })}\n`);
  } else {
    io.out('heki-sim core demo: guest booted in long mode, CR0.WP and CR4.SMEP|SMAP pinned,\n');
    io.out('text locked RX+immutable, rodata R+immutable; platform MSRs pinned by the VMM.\n\n');
    for (const s of steps) io.out(`  ${s.stopped ? 'stopped ' : 'MISSED  '} ${s.name.padEnd(46)} ${s.stop}\n`);
    io.out(`\n${stopped}/${steps.length} attacks stopped; the VMM logged ${vmm.log.events().length} exits.\n`);
  }
  return stopped === steps.length ? EXIT_OK : EXIT_NEGATIVE;
}
