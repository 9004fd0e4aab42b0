/**
 * EPT access checks per second on a realistic access mix, and the whole vCPU access path.
 *
 * The mix. With the fixtures, the frames come from the EPT of a booted real kernel, by what
 * the kernel locked there: text (R+X, immutable), read-only data, writable data, and frames
 * nobody locked (the default RWX, e.g. user memory). Without fixtures a synthetic EPT with the
 * same shape stands in (16 MiB text, 8 MiB rodata, 16 MiB data in 1 GiB). Accesses: 60 %
 * reads (all kinds of frame), 25 % writes (mostly data; a tenth of them to text or rodata,
 * which the EPT refuses), 15 % instruction fetches (mostly text; a tenth from data, refused:
 * NX); 95 % at CPL 0. A million such (frame, access, mode) triples are drawn once, with a
 * fixed seed, each access also as its mask (`accessMask`, as the vCPU makes it once per
 * access), and `Ept.check` (the vCPU's check) is called on each, round after round; the
 * allowed count is kept and printed, so no call can be optimised away. `Ept.allows`, the
 * same check taking the access kind and mode as strings, is timed on the same mix for
 * comparison.
 *
 * The vCPU path (`GuestCpu.read`/`write`/`fetch`: canonical check, TLB or page walk, mode,
 * WP, SMEP, SMAP, NX and EPT checks, the copy) is timed the same way on the booted machine.
 */
import { gfn, gva, type Gfn, type GuestVirtAddr } from '../shared/addr.ts';
import type { Ept } from '../hypervisor/ept/ept.ts';
import { Ept as EptImpl } from '../hypervisor/ept/ept.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS, accessMask, type AccessMask } from '../hypervisor/ept/permissions.ts';
import type { AccessKind, AccessMode } from '../shared/guest-cpu.ts';
import { PROT } from '../guest/mm/kernel-mm.ts';
import type { BenchContext } from './context.ts';
import { bootReal } from './real-machine.ts';

/** A deterministic generator (a fixed seed: the same mix every run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 0x1_0000_0000;
  };
}

/** Frames of the EPT by what they hold. */
interface FrameClasses {
  readonly text: number[];
  readonly rodata: number[];
  readonly data: number[];
  readonly frames: number;
}

function classify(ept: Ept): FrameClasses {
  const text: number[] = [];
  const rodata: number[] = [];
  const data: number[] = [];
  for (const [f, p] of ept.entries()) {
    if (p & EPT_XS) text.push(f);
    else if (p & EPT_W) data.push(f);
    else if (p & EPT_R) rodata.push(f);
  }
  return { text, rodata, data, frames: ept.frames };
}

/** A million accesses drawn from `c` as the file comment says. */
function mix(c: FrameClasses, n = 1 << 20): { frames: Int32Array | Float64Array; access: AccessKind[]; mode: AccessMode[]; masks: Uint16Array } {
  const rnd = lcg(0x4845_4b49);
  const pick = (a: number[]): number => (a.length ? (a[Math.floor(rnd() * a.length)] as number) : Math.floor(rnd() * c.frames));
  const anyFrame = (): number => Math.floor(rnd() * c.frames);
  // Frame numbers as the vCPU has them: small integers (a guest below 8 TiB).
  const frames = c.frames < 0x8000_0000 ? new Int32Array(n) : new Float64Array(n);
  const access: AccessKind[] = new Array(n);
  const mode: AccessMode[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const a = rnd();
    const r = rnd();
    if (a < 0.6) {
      access[i] = 'read';
      frames[i] = r < 0.2 ? pick(c.text) : r < 0.5 ? pick(c.rodata) : r < 0.9 ? pick(c.data) : anyFrame();
    } else if (a < 0.85) {
      access[i] = 'write';
      frames[i] = r < 0.85 ? pick(c.data) : r < 0.9 ? pick(c.text) : r < 0.95 ? pick(c.rodata) : anyFrame();
    } else {
      access[i] = 'fetch';
      frames[i] = r < 0.9 ? pick(c.text) : pick(c.data);
    }
    mode[i] = rnd() < 0.95 ? 'kernel' : 'user';
  }
  const masks = new Uint16Array(n);
  for (let i = 0; i < n; i++) masks[i] = accessMask(access[i]!, mode[i]!);
  return { frames, access, mode, masks };
}

/** A synthetic EPT shaped like the booted real kernel's (no fixtures). */
function syntheticEpt(): Ept {
  const ept = new EptImpl(1 << 18);
  const mb = 256; // frames per MiB
  for (let f = 16 * mb; f < 32 * mb; f++) ept.set(gfn(f), EPT_R | EPT_XS | EPT_IMMUTABLE);
  for (let f = 32 * mb; f < 40 * mb; f++) ept.set(gfn(f), EPT_R | EPT_IMMUTABLE);
  for (let f = 40 * mb; f < 56 * mb; f++) ept.set(gfn(f), EPT_R | EPT_W);
  return ept;
}

/** What the EPT run measured. */
export interface EptFigures {
  /** `Ept.check` (the access as its mask). */
  readonly checksPerSecond: number;
  /** `Ept.allows` (the access kind and mode as strings). */
  readonly allowsPerSecond: number;
  readonly getsPerSecond: number;
  readonly allowedShare: number;
  readonly source: 'real kernel' | 'synthetic';
  readonly classes: { text: number; rodata: number; data: number };
  /** vCPU accesses per second (real kernel only). */
  readonly vcpuPerSecond: number | undefined;
}

/** Times `Ept.allows` (and `get`) over the mix for about `budgetMs`. */
function timeChecks(ept: Ept, m: ReturnType<typeof mix>, budgetMs: number): { checks: number; allows: number; gets: number; allowedShare: number } {
  const n = m.frames.length;
  // The frames were drawn below the EPT's size in mix(): valid frame numbers, kept in a typed
  // array (which cannot carry the brand) as the core's own hot paths do.
  const { frames, access, mode, masks } = m;
  let allowed = 0;
  let rounds = 0;
  // One round untimed: the JIT optimises the loop first.
  for (let i = 0; i < n; i++) if (ept.check(frames[i] as Gfn, masks[i] as AccessMask)) allowed++;
  allowed = 0;
  const t0 = performance.now();
  do {
    for (let i = 0; i < n; i++) if (ept.check(frames[i] as Gfn, masks[i] as AccessMask)) allowed++;
    rounds++;
  } while (performance.now() - t0 < budgetMs);
  const checks = (rounds * n) / ((performance.now() - t0) / 1000);
  let allowedByString = 0;
  let sRounds = 0;
  for (let i = 0; i < n; i++) if (ept.allows(frames[i] as Gfn, access[i]!, mode[i]!)) allowedByString++;
  allowedByString = 0;
  const s0 = performance.now();
  do {
    for (let i = 0; i < n; i++) if (ept.allows(frames[i] as Gfn, access[i]!, mode[i]!)) allowedByString++;
    sRounds++;
  } while (performance.now() - s0 < budgetMs / 2);
  const allows = (sRounds * n) / ((performance.now() - s0) / 1000);
  // Both forms must give the same answers on the same mix.
  if (allowedByString / sRounds !== allowed / rounds)
    throw new Error(`Ept.check and Ept.allows disagree: ${allowed / rounds} vs ${allowedByString / sRounds} allowed per round`);
  let sum = 0;
  let gRounds = 0;
  const g0 = performance.now();
  do {
    for (let i = 0; i < n; i++) sum += ept.get(frames[i] as Gfn);
    gRounds++;
  } while (performance.now() - g0 < budgetMs / 2);
  const gets = (gRounds * n) / ((performance.now() - g0) / 1000);
  if (sum < 0) throw new Error('unreachable');
  return { checks, allows, gets, allowedShare: allowed / (rounds * n) };
}

/** Measures the EPT checks (and, with the fixtures, the vCPU path). */
export async function measureEpt(ctx: BenchContext, budgetMs: number): Promise<EptFigures> {
  if (!ctx.haveFixtures) {
    const ept = syntheticEpt();
    const c = classify(ept);
    const t = timeChecks(ept, mix(c), budgetMs);
    return {
      checksPerSecond: t.checks,
      allowsPerSecond: t.allows,
      getsPerSecond: t.gets,
      allowedShare: t.allowedShare,
      source: 'synthetic',
      classes: { text: c.text.length, rodata: c.rodata.length, data: c.data.length },
      vcpuPerSecond: undefined,
    };
  }
  const { machine } = await bootReal(ctx, { image: await ctx.image() });
  try {
    const ept = machine.vmm.core.ept;
    const c = classify(ept);
    const t = timeChecks(ept, mix(c), budgetMs);
    const vcpuPerSecond = await timeVcpu(machine, budgetMs);
    return {
      checksPerSecond: t.checks,
      allowsPerSecond: t.allows,
      getsPerSecond: t.gets,
      allowedShare: t.allowedShare,
      source: 'real kernel',
      classes: { text: c.text.length, rodata: c.rodata.length, data: c.data.length },
      vcpuPerSecond,
    };
  } finally {
    await machine.dispose();
  }
}

/** vCPU accesses per second on the booted kernel: reads of text, rodata and data, writes to a buffer of its own, fetches from text. */
async function timeVcpu(machine: Awaited<ReturnType<typeof bootReal>>['machine'], budgetMs: number): Promise<number> {
  const k = machine.kernel!;
  const cpu = k.cpu;
  const buf = await k.mm.vmalloc(16, PROT.RW);
  if (!buf.ok) throw new Error(`vmalloc: ${buf.reason}`);
  const sec = (name: string) => machine.image.sections.find((s) => s.name === name);
  const text = sec('.text')!;
  const rodata = sec('.rodata')!;
  const data = sec('.data')!;
  const rnd = lcg(7);
  const n = 1 << 14;
  const ops: Array<{ kind: 0 | 1 | 2; va: GuestVirtAddr }> = [];
  const within = (s: { vaddr: bigint; size: number }, len: number) => s.vaddr + BigInt(Math.floor(rnd() * (s.size - len)) & ~7);
  for (let i = 0; i < n; i++) {
    const a = rnd();
    if (a < 0.6) {
      const r = rnd();
      ops.push({ kind: 0, va: gva(within(r < 0.3 ? text : r < 0.6 ? rodata : data, 8)) });
    } else if (a < 0.85) ops.push({ kind: 1, va: gva(buf.value.va + BigInt(Math.floor(rnd() * (16 * 4096 - 8)) & ~7)) });
    else ops.push({ kind: 2, va: gva(within(text, 1)) });
  }
  const bytes = new Uint8Array(8);
  let ok = 0;
  let rounds = 0;
  const t0 = performance.now();
  do {
    for (const op of ops) {
      const r = op.kind === 0 ? cpu.read(op.va, 8) : op.kind === 1 ? cpu.write(op.va, bytes) : cpu.fetch(op.va, 1);
      if (r.ok) ok++;
    }
    rounds++;
  } while (performance.now() - t0 < budgetMs);
  if (ok === 0) throw new Error('no vCPU access succeeded');
  return (rounds * n) / ((performance.now() - t0) / 1000);
}
