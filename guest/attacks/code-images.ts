/**
 * Getting code in as an eBPF JIT image: unsigned, signed genuinely but for another load
 * address (a signature replayed elsewhere), and signed but with unverified bytes riding in
 * the tail of its last page. Each goes through the kernel's own BPF JIT loader with the Heki
 * backend's `loadCode` hooked to see (and, for the tail, to act on) the request, then checks
 * by fetching through an executable alias that the image's frames are not executable.
 */
import type { CodePlacementSigner } from '../bpf/code-signer.ts';
import type { CodeValidation, HekiStatus } from '../heki/hypervisor.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { Attack, AttackResult } from './attack.ts';
import { executableFrames } from './exploits.ts';
import { AttackSetupError, SHELLCODE, hex, mustWrite, physOf } from './primitives.ts';

/** The attacker's "JIT output": shellcode padded to 64 bytes with int3. */
export function jitImage(): Uint8Array {
  const img = new Uint8Array(64).fill(0xcc);
  img.set(SHELLCODE, 0);
  return img;
}

/** How far from the real placement the replayed signature was issued. */
export const WRONG_ADDRESS_DELTA = 0x10_0000n;

async function loadHooked(
  kernel: GuestKernel,
  name: string,
  sign: CodePlacementSigner | undefined,
  before?: (c: CodeValidation) => void,
): Promise<AttackResult> {
  const hv = kernel.heki.hv;
  const original = hv.loadCode;
  if (!original) throw new AttackSetupError(`the ${hv.name} backend cannot load code images`);
  let seen: { request: CodeValidation; frames: bigint[]; status: HekiStatus } | undefined;
  hv.loadCode = async (c: CodeValidation): Promise<HekiStatus> => {
    before?.(c);
    const frames: bigint[] = [];
    for (let off = 0n; off < BigInt(c.imageLen); off += 0x1000n) frames.push(physOf(kernel, c.imageVa + off) & ~0xfffn);
    const status = await original.call(hv, c);
    seen = { request: c, frames, status };
    return status;
  };
  let r;
  try {
    r = await kernel.bpf.load(name, jitImage(), sign);
  } finally {
    hv.loadCode = original;
  }
  if (!seen) throw new AttackSetupError(`the JIT gave up before asking the hypervisor: ${r.ok ? '' : r.error.message}`);
  const exec = executableFrames(kernel, seen.frames);
  const status = seen.status.ok ? '0' : seen.status.name;
  const detail = `JIT image ${name} at ${hex(seen.request.imageVa)} (${seen.request.imageLen} bytes): KVM_HC_HEKI_LOAD_CODE ${status}; JIT: ${r.ok ? 'loaded' : r.error.message}; executable frames afterwards: ${exec.length ? exec.map((f) => hex(f)).join(', ') : 'none'}`;
  const stopped = !r.ok && !seen.status.ok && exec.length === 0;
  return {
    stopped,
    stop: stopped ? `${status} from KVM_HC_HEKI_LOAD_CODE` : r.ok ? 'nothing: the image became executable' : 'nothing: a frame is executable',
    detail,
  };
}

/** The code-image attacks. */
export const CODE_IMAGE_ATTACKS: readonly Attack[] = [
  {
    name: 'bpf-unsigned-jit',
    title: 'load an unsigned eBPF JIT image (shellcode) and have it made executable',
    expectedStop:
      'verifier denies the code-load request (code-load: signed by unknown key 0000000000000000): -KVM_EPERM, heki-denial exit, audit record ok=false',
    run: ({ kernel }) => loadHooked(kernel, 'attack_unsigned', undefined),
  },
  {
    name: 'bpf-jit-wrong-address',
    title: 'load a JIT image with a genuine signature issued for another load address',
    expectedStop:
      'verifier denies the code-load request (code-load: signature does not match the image at this address): -KVM_EPERM, heki-denial exit, audit record ok=false',
    run: ({ kernel, signers }) =>
      loadHooked(kernel, 'attack_moved', (image, placement) => signers.code(image, { what: placement.what, addr: placement.addr + WRONG_ADDRESS_DELTA })),
  },
  {
    name: 'bpf-jit-unsigned-tail',
    title: 'load a correctly signed JIT image with extra shellcode in the unsigned tail of its last page',
    expectedStop: 'the core refuses (bytes after the image in its last frame are not zero): -KVM_EINVAL before any verification',
    run: ({ kernel, signers }) =>
      loadHooked(kernel, 'attack_tail', signers.code, (c) => {
        mustWrite(kernel.cpu, c.imageVa + BigInt(c.imageLen) + 0x100n, SHELLCODE);
      }),
  },
];
