/**
 * Executing what is not authenticated code: shellcode planted in the kernel heap, on a kernel
 * stack, in kernel .data and in a module's data; a user page run in kernel mode; and the
 * kernel's freed init text. The kernel maps data NX; the attacker clears NX in the page-table
 * entry (it owns the tables) and fetches again. Expected: an `ept-violation` exit (kernel
 * fetch) and #PF (ept-violation), because the frames are not executable in the EPT; for the
 * user page, SMEP (pinned) stops the fetch first.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import { CR4 } from '../../shared/x86/cpu.ts';
import { PTE } from '../mm/page-table-writer.ts';
import { PROT } from '../mm/kernel-mm.ts';
import type { Attack } from './attack.ts';
import { executeAt } from './exploits.ts';
import { loadGenuine, moduleGroup } from './module-hooks.ts';
import { AttackSetupError, SHELLCODE, allocFrame, faultShort, hex, mustWrite, outcomeText, symbol } from './primitives.ts';

const EXPECTED =
  'with NX cleared in the page-table entry (as mapped: #PF nx), an ept-violation exit (kernel fetch) and #PF (ept-violation); the frame not executable';

/** Where the user-page attack maps its page (a typical ELF text address). */
export const USER_PAGE_VA = 0x40_0000n;
/** Offset into kernel .data where the .data attack plants code. */
export const DATA_OFFSET = 0x800n;
/** Offset into a module's data group where the module-data attack plants code. */
export const MODULE_DATA_OFFSET = 0x400n;

/** The data-execution attacks. */
export const DATA_EXECUTION_ATTACKS: readonly Attack[] = [
  {
    name: 'exec-kernel-heap',
    title: 'plant shellcode in a kmalloc page (direct map) and jump to it',
    expectedStop: EXPECTED,
    run: ({ kernel }) => Promise.resolve(executeAt(kernel, allocFrame(kernel).va + 0x100n, 'kernel heap page', true)),
  },
  {
    name: 'exec-kernel-stack',
    title: 'plant shellcode on a (vmalloc) kernel stack and return into it',
    expectedStop: EXPECTED,
    async run({ kernel }) {
      const stack = await kernel.mm.vmalloc(4, PROT.RW);
      if (!stack.ok) throw new AttackSetupError(`cannot allocate a stack: ${stack.reason}`);
      return executeAt(kernel, stack.value.va + 4n * 4096n - 0x100n, 'kernel stack', true);
    },
  },
  {
    name: 'exec-kernel-data',
    title: 'plant shellcode in kernel .data and jump to it',
    expectedStop: EXPECTED,
    run: ({ kernel }) => Promise.resolve(executeAt(kernel, kernel.image.boundaries._sdata + DATA_OFFSET, 'kernel .data', true)),
  },
  {
    name: 'exec-module-data',
    title: "plant shellcode in a loaded module's data (crc7) and jump to it",
    expectedStop: EXPECTED,
    async run(ctx) {
      const m = await loadGenuine(ctx, 'crc7');
      return executeAt(ctx.kernel, moduleGroup(m, 'rw').start + MODULE_DATA_OFFSET, 'crc7 data', true);
    },
  },
  {
    name: 'exec-freed-init-text',
    title: 'jump into .init.text, freed at the end of boot (its code is still in memory)',
    expectedStop: EXPECTED,
    run: ({ kernel }) => {
      const init = kernel.image.sectionByName('.init.text');
      if (!init) throw new AttackSetupError('the kernel has no .init.text');
      const entry = symbol(kernel, 'start_kernel');
      const va = entry >= init.vaddr && entry < init.vaddr + BigInt(init.size) ? entry : init.vaddr;
      return Promise.resolve(executeAt(kernel, va, `freed .init.text (${kernel.image.symbolize(va)})`, false));
    },
  },
  {
    name: 'exec-user-page-in-kernel-mode',
    title: 'map shellcode in a user page and execute it at CPL 0 (ret2usr), after trying to clear SMEP',
    expectedStop: '#GP (cr-pin) clearing SMEP; the kernel-mode fetch from the user page takes #PF (smep)',
    run({ kernel, cpu }) {
      const frame = allocFrame(kernel);
      mustWrite(cpu, frame.va, SHELLCODE);
      const e = kernel.mm.pageTables.map(USER_PAGE_VA, frame.pa, PTE.US);
      if (e) throw new AttackSetupError(`cannot map the user page: ${e.kind}`);
      cpu.invlpg(gvaFromRegister(USER_PAGE_VA));
      const smep = cpu.writeCr(4, cpu.readCr(4) & ~CR4.SMEP);
      const f = cpu.fetch(gvaFromRegister(USER_PAGE_VA), SHELLCODE.length);
      const detail = `user page ${hex(USER_PAGE_VA)} -> ${hex(frame.pa)} holds the shellcode; clearing SMEP: ${outcomeText(smep)}; kernel-mode fetch: ${outcomeText(f)}`;
      if (f.ok) return Promise.resolve({ stopped: false, stop: 'nothing: the kernel fetched the user page', detail });
      return Promise.resolve({ stopped: true, stop: faultShort(f.fault), detail });
    },
  },
];
