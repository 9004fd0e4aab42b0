/**
 * Attacks whose last step is the host's: device DMA and the VMM's own copies of guest memory.
 *
 * - DMA into protected pages (Rick Edgecombe's objection to Heki: device DMA is done by the
 *   host and bypasses the EPT): the compromised kernel stores a payload on the emulated disk,
 *   then submits a virtio-blk READ whose data buffer is locked kernel text (or rodata), and,
 *   in a second attack, a module's text while the verifier is looking at it (a TOCTOU through
 *   DMA). The device's DMA port must refuse before any byte moves.
 * - The VMM reading private memory (protected-memory mode): the guest keeps a secret in a
 *   private page and shares one bounce page; the host's snapshot and migration paths, and the
 *   disk used as a side door, must all refuse the private page, and the secret must not leave.
 */
import { gpa, gvaFromRegister } from '../../shared/addr.ts';
import { HC, KVM_MAP_GPA_RANGE } from '../../shared/abi.ts';
import { VIRTIO_BLK_S, VIRTIO_BLK_T, encodeVirtioBlkRequest } from '../../shared/virtio-blk.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { Attack, AttackHost, HostOutcome } from './attack.ts';
import { loadModuleHooked, moduleBytes, requestSection, sectionIndex } from './module-hooks.ts';
import { VICTIM_MODULE } from './module-loading.ts';
import { AttackSetupError, allocFrame, bytesHex, hex, hypercallText, mustRead, mustWrite, physOf, sameBytes, symbol } from './primitives.ts';

/** The disk sector the attacker stages its payload in. */
export const STAGING_SECTOR = 8n;
/** One sector. */
const SECTOR = 512;
/** The payload: int3/nop pairs, one sector. */
export const DMA_PAYLOAD: Readonly<Uint8Array> = Uint8Array.from({ length: SECTOR }, (_, i) => (i % 2 === 0 ? 0xcc : 0x90));
/** The guest's secret in the private-memory attack. */
export const GUEST_SECRET = new TextEncoder().encode('-----BEGIN PRIVATE KEY----- heki-sim guest secret');

/** A descriptor page (descriptor at 0, status byte at 0x100) and a disk request helper. */
class DiskDriver {
  readonly desc: { pa: bigint; va: bigint };
  constructor(
    private readonly kernel: GuestKernel,
    private readonly host: AttackHost,
    desc?: { pa: bigint; va: bigint },
  ) {
    this.desc = desc ?? allocFrame(kernel);
  }
  get statusPa(): bigint {
    return this.desc.pa + 0x100n;
  }
  status(): number {
    return mustRead(this.kernel.cpu, this.desc.va + 0x100n, 1)[0]!;
  }
  request(type: number, dataGpa: bigint): HostOutcome {
    mustWrite(this.kernel.cpu, this.desc.va + 0x100n, Uint8Array.of(0xff));
    mustWrite(this.kernel.cpu, this.desc.va, encodeVirtioBlkRequest({ type, sector: STAGING_SECTOR, dataGpa, dataLen: SECTOR, statusGpa: this.statusPa }));
    return this.host.ringDiskDoorbell(this.desc.pa);
  }
}

/** The gist of a DMA refusal: `frame 0x10d3 is IMMUTABLE in the EPT`. */
function refusalWhy(message: string): string {
  return /frame 0x[0-9a-f]+ is [^(;]+?(?= \(|;|$)/.exec(message)?.[0] ?? message;
}

function outcome(r: HostOutcome<unknown>): string {
  return r.ok ? 'completed' : `refused (${r.error})`;
}

/** Stages the payload on the disk from an attacker page. */
function stagePayload(kernel: GuestKernel, disk: DiskDriver): void {
  const staging = allocFrame(kernel);
  mustWrite(kernel.cpu, staging.va, DMA_PAYLOAD);
  const w = disk.request(VIRTIO_BLK_T.OUT, staging.pa);
  if (!w.ok) throw new AttackSetupError(`staging the payload on the disk failed: ${w.error}`);
}

/** The host-side attacks. */
export const HOST_SIDE_ATTACKS: readonly Attack[] = [
  {
    name: 'dma-into-protected-pages',
    title: 'stage shellcode on the virtio-blk disk, then have the disk read it over locked kernel text and rodata (DMA)',
    expectedStop:
      'the DMA port refuses before any byte moves (frame IMMUTABLE in the EPT): status IOERR, a dma-refused event in the VMM log and a dma-refused audit record; text and rodata unchanged',
    run({ kernel, host }) {
      const disk = new DiskDriver(kernel, host);
      stagePayload(kernel, disk);
      const steps: string[] = [`payload staged in sector ${STAGING_SECTOR}`];
      let stopped = true;
      let stop = '';
      for (const [what, va] of [
        ['kernel .text (commit_creds)', symbol(kernel, 'commit_creds') & ~0xfffn],
        ['kernel .rodata (sys_call_table)', symbol(kernel, 'sys_call_table') & ~0xfffn],
      ] as const) {
        const before = mustRead(kernel.cpu, va, SECTOR);
        const r = disk.request(VIRTIO_BLK_T.IN, physOf(kernel, va));
        const after = mustRead(kernel.cpu, va, SECTOR);
        const same = sameBytes(before, after);
        steps.push(
          `disk read into ${what} at ${hex(physOf(kernel, va))}: ${outcome(r)}, status byte ${disk.status()}, bytes ${same ? 'unchanged' : `changed to ${bytesHex(after.subarray(0, 8))}...`}`,
        );
        if (r.ok || !same) stopped = false;
        else stop ||= `DMA refused: ${refusalWhy(r.error)}; status IOERR`;
        if (disk.status() !== VIRTIO_BLK_S.IOERR) steps.push(`unexpected status byte ${disk.status()}`);
      }
      return Promise.resolve({ stopped, stop: stopped ? stop : 'nothing: the disk wrote over protected memory', detail: steps.join('; ') });
    },
  },
  {
    name: 'dma-during-module-verification',
    title: "while crc7's load verdict is pending, have the disk DMA shellcode over its text frame (TOCTOU through a device)",
    expectedStop:
      'the DMA port refuses the frozen frame (a verification is in flight): dma-refused event and audit record; the module loads with exactly the signed bytes, and a later DMA is refused as IMMUTABLE',
    async run(ctx) {
      const { kernel, host } = ctx;
      const disk = new DiskDriver(kernel, host);
      stagePayload(kernel, disk);
      const file = moduleBytes(ctx, VICTIM_MODULE);
      const text = sectionIndex(file, '.text');
      const dmas: Array<{ when: string; r: HostOutcome }> = [];
      let textPa = 0n;
      const { result } = await loadModuleHooked(kernel, file, {
        during(request) {
          textPa = physOf(kernel, requestSection(request, text).gva) & ~0xfffn;
          dmas.push({ when: 'while the verdict was pending', r: disk.request(VIRTIO_BLK_T.IN, textPa) });
        },
      });
      if (!result.ok) throw new AttackSetupError(`the genuine module did not load: ${result.error.message}`);
      const diffs = result.value.image.sections
        .filter((s) => !s.nobits && s.size > 0)
        .filter((s) => {
          const now = kernel.cpu.read(gvaFromRegister(s.addr), s.size);
          return !now.ok || !sameBytes(now.value, s.bytes);
        });
      dmas.push({ when: 'after the load', r: disk.request(VIRTIO_BLK_T.IN, textPa) });
      const detail = `${dmas.map((d) => `disk read into crc7 text frame ${hex(textPa)} ${d.when}: ${outcome(d.r)}`).join('; ')}; sections differing from the signed image: ${diffs.length ? diffs.map((s) => s.name).join(', ') : 'none'}`;
      const first = dmas[0]!.r;
      const stopped = dmas.every((d) => !d.r.ok) && diffs.length === 0;
      return {
        stopped,
        stop: stopped && !first.ok ? `DMA refused: ${refusalWhy(first.error)}` : 'nothing: the disk changed the module while it was verified',
        detail,
      };
    },
  },
  {
    name: 'vmm-reads-private-memory',
    title: "in protected-memory mode, the VMM reads a private page holding the guest's secret (snapshot, migration) and tries the disk as a side door",
    expectedStop:
      'every host copy of the private page fails loudly (private-page): host-access-refused events and audit records; the disk write from it is refused (dma-refused, private); the secret never leaves the guest',
    needs: { protectedMemory: true },
    async run({ kernel, host }) {
      const secret = allocFrame(kernel);
      mustWrite(kernel.cpu, secret.va, GUEST_SECRET);
      const bounce = allocFrame(kernel);
      const share = await kernel.cpu.vmcall(HC.MAP_GPA_RANGE, bounce.pa, 1n, BigInt(KVM_MAP_GPA_RANGE.DECRYPTED));
      if (share !== 0) throw new AttackSetupError(`sharing the bounce page failed: ${hypercallText(HC.MAP_GPA_RANGE, share)}`);
      mustWrite(kernel.cpu, bounce.va + 0x800n, new TextEncoder().encode('shared data'));
      const control = host.vmmReadGuest('snapshot', gpa(bounce.pa + 0x800n), 11);
      const leaks: string[] = [];
      const steps = [
        `secret in private frame ${hex(secret.pa)}; bounce page ${hex(bounce.pa)} shared: ${hypercallText(HC.MAP_GPA_RANGE, share)}; the host reads the shared page: ${control.ok ? `"${new TextDecoder().decode(control.value)}"` : control.error}`,
      ];
      for (const path of ['snapshot', 'migration', 'debug'] as const) {
        const r = host.vmmReadGuest(path, gpa(secret.pa), GUEST_SECRET.length);
        steps.push(`${path} copy of the private page: ${r.ok ? `GOT ${JSON.stringify(new TextDecoder().decode(r.value))}` : r.error}`);
        // Any copy the path allowed is a breach, whatever it returned.
        if (r.ok) leaks.push(path);
      }
      const disk = new DiskDriver(kernel, host, bounce);
      const w = disk.request(VIRTIO_BLK_T.OUT, secret.pa);
      const onDisk = host.readDiskSectors(Number(STAGING_SECTOR), 1);
      const diskLeak = onDisk.some((b) => b !== 0);
      steps.push(
        `disk write from the private page: ${outcome(w)}, status byte ${disk.status()}; sector ${STAGING_SECTOR} ${diskLeak ? `holds ${bytesHex(onDisk.subarray(0, 8))}...` : 'is empty'}`,
      );
      if (w.ok || diskLeak) leaks.push('disk');
      const stopped = leaks.length === 0;
      return {
        stopped,
        stop: stopped
          ? 'every host copy of the private page refused (private-page); the disk write refused (private)'
          : `nothing: the secret left the guest through ${leaks.join(', ')}`,
        detail: steps.join('; '),
      };
    },
  },
];
