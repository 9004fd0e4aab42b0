/**
 * set_memory_* after boot, as an attacker uses it: making a data page holding shellcode
 * executable, and making immutable kernel text writable. Both go through the kernel's own
 * memory manager (KernelMm.setMemory, which asks the hypervisor for any widening) and then
 * straight through the hypercall with the most favourable attributes. The verifier's
 * set-memory plugin must deny (unauthenticated content; IMMUTABLE pages never change) and the
 * page must stay as it was: the attacker checks by fetching and writing.
 */
import { HC, MEM_ATTR } from '../../shared/abi.ts';
import { PROT } from '../mm/kernel-mm.ts';
import type { Attack } from './attack.ts';
import { executeAt, overwriteProtectedByte } from './exploits.ts';
import { AttackSetupError, SHELLCODE, hex, hypercallText, mustWrite, symbol } from './primitives.ts';

/** The set_memory attacks. */
export const SET_MEMORY_ATTACKS: readonly Attack[] = [
  {
    name: 'set-memory-x-on-data',
    title: 'set_memory_ro then set_memory_x on a vmalloc page holding shellcode',
    expectedStop:
      'verifier denies the set-memory request (set-memory: executable permission for unauthenticated content): -KVM_EPERM, heki-denial exit; the page stays NX',
    async run({ kernel }) {
      const page = await kernel.mm.vmalloc(1, PROT.RW);
      if (!page.ok) throw new AttackSetupError(`vmalloc: ${page.reason}`);
      const va = page.value.va;
      mustWrite(kernel.cpu, va, SHELLCODE);
      // W^X would refuse RW+X outright; an attacker drops W first (narrowing is always allowed).
      const ro = await kernel.mm.setMemory(va, 1, 'ro');
      const x = await kernel.mm.setMemory(va, 1, 'x');
      const raw = await kernel.cpu.vmcall(HC.HEKI_SET_MEMORY, va, 1n, BigInt(MEM_ATTR.READ | MEM_ATTR.EXEC));
      const fetch = executeAt(kernel, va, 'the page', false);
      const steps =
        `set_memory_ro(${hex(va)}): ${ro.ok ? 'ok' : ro.reason}; set_memory_x: ${x.ok ? 'ok' : x.reason}; ` +
        `HEKI_SET_MEMORY(R|X) directly: ${hypercallText(HC.HEKI_SET_MEMORY, raw)}; then ${fetch.detail}`;
      const stopped = !x.ok && raw !== 0 && fetch.stopped;
      return {
        stopped,
        stop: stopped
          ? `${hypercallText(HC.HEKI_SET_MEMORY, raw)}; the fetch takes ${fetch.stop}`
          : `nothing: ${x.ok || raw === 0 ? 'set_memory_x was granted' : fetch.stop}`,
        detail: steps,
      };
    },
  },
  {
    name: 'set-memory-rw-on-text',
    title: 'set_memory_rw on a page of immutable kernel text, then ask for R|W directly',
    expectedStop:
      'set_memory_rw: -KVM_EINVAL (W^X, the core); HEKI_SET_MEMORY(R|W): verifier denies (set-memory: IMMUTABLE), -KVM_EPERM, heki-denial exit; the text stays read-only',
    async run({ kernel }) {
      const target = symbol(kernel, 'commit_creds');
      const va = target & ~0xfffn;
      const rw = await kernel.mm.setMemory(va, 1, 'rw');
      const raw = await kernel.cpu.vmcall(HC.HEKI_SET_MEMORY, va, 1n, BigInt(MEM_ATTR.READ | MEM_ATTR.WRITE));
      const write = overwriteProtectedByte(kernel, target + 0x10n, 'kernel .text');
      const detail = `set_memory_rw(${hex(va)}): ${rw.ok ? 'ok' : rw.reason}; HEKI_SET_MEMORY(R|W): ${hypercallText(HC.HEKI_SET_MEMORY, raw)}; then ${write.detail}`;
      const stopped = !rw.ok && raw !== 0 && write.stopped;
      return {
        stopped,
        stop: stopped ? hypercallText(HC.HEKI_SET_MEMORY, raw) : `nothing: ${rw.ok || raw === 0 ? 'the text page was made writable' : write.stop}`,
        detail,
      };
    },
  },
];
