/**
 * The denials a report shows, collected while a scenario runs: verifier verdicts with
 * `ok: false` (from the host-side observer), EPT-violation and Heki-denial exits, and steps
 * whose outcome was `denied`. Each denial says where it happened (virtual and/or
 * guest-physical addresses) so the report can mark it on the map, and during which step.
 *
 * The collector is a {@link VmObserver}: it keeps only what a denial needs and never keeps
 * the core's objects (a request is built, with `request()`, only when its verdict is a denial,
 * inside the verdict callback, and only its addresses are copied).
 */
import type { ExitEvent, VerdictEvent, VerifierRequestEvent, VmObserver } from '../hypervisor/observe/vm-observer.ts';
import type { OutgoingRequest } from '../hypervisor/verifier-link/verifier-link.ts';
import { eptString } from '../hypervisor/ept/permissions.ts';
import type { StepOutcome } from '../machine/machine-api.ts';

/** One place a denial concerns: a kernel virtual address, a guest-physical one, or both. */
export interface DenialSite {
  readonly va?: bigint;
  readonly gpa?: number;
  /** What is there (`ftrace site`, `range 2`, `section .text`), optional. */
  readonly label?: string;
}

/** One denial. */
export interface Denial {
  /** 1, 2, ... in the order they happened; the report's anchors use it. */
  readonly id: number;
  readonly source: 'verifier' | 'ept-violation' | 'heki-denial' | 'step';
  /** The step that was running (1-based), or null outside steps. */
  readonly step: number | null;
  /** A short title: `verifier: set-memory`, `EPT violation: write (kernel)`, `step 4 write`. */
  readonly title: string;
  readonly reason: string;
  /** At most {@link MAX_SITES} places; `moreSites` counts the others. */
  readonly sites: readonly DenialSite[];
  readonly moreSites: number;
}

/** Most denials one report keeps (later ones are counted, not kept). */
export const MAX_DENIALS = 1000;
/** Most places kept per denial (a text-patch batch can have 40,000 sites). */
export const MAX_SITES = 32;

const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/** The places a denied request concerns, with per-item reasons where the verdict has them. */
export function requestSites(req: OutgoingRequest, verdict: VerdictEvent['verdict']): { sites: DenialSite[]; total: number; title: string } {
  const items = verdict.items;
  const deniedOnly = <T>(list: readonly T[]): Array<[T, number]> => {
    const all = list.map((x, i) => [x, i] as [T, number]);
    const denied = items ? all.filter(([, i]) => items[i] && !items[i]!.ok) : [];
    return denied.length > 0 ? denied : all;
  };
  const why = (i: number): string => (items?.[i] && !items[i]!.ok ? `: ${items[i]!.reason}` : '');
  switch (req.kind) {
    case 'text-patch': {
      const list = deniedOnly(req.items);
      return {
        title: 'verifier: text-patch',
        total: list.length,
        sites: list.slice(0, MAX_SITES).map(([it, i]) => ({ va: it.site, label: `${it.kind} site ${i + 1}${why(i)}` })),
      };
    }
    case 'set-memory': {
      const list = deniedOnly(req.ranges);
      const sites: DenialSite[] = [];
      let total = 0;
      for (const [r, i] of list) {
        r.frames.forEach((f, p) => {
          total++;
          if (sites.length < MAX_SITES) sites.push({ va: r.addr + BigInt(p) * 4096n, gpa: f * 4096, label: `range ${i + 1} page ${p + 1}${why(i)}` });
        });
      }
      return { title: 'verifier: set-memory', total, sites };
    }
    case 'module-load':
      return {
        title: `verifier: module-load ${req.name}`,
        total: req.sections.length,
        sites: req.sections.slice(0, MAX_SITES).map((s) => ({ va: s.addr, label: `section #${s.shndx} (${s.size} bytes)` })),
      };
    case 'code-load':
      return { title: `verifier: code-load ${req.what} ${req.name}`, total: 1, sites: [{ va: req.addr, label: req.name }] };
    case 'kernel-text':
      return {
        title: 'verifier: kernel-text',
        total: req.sections.length,
        sites: req.sections.slice(0, MAX_SITES).map((s) => ({ va: s.addr, label: s.name })),
      };
    case 'module-unload':
    case 'module-init-free':
      return { title: `verifier: ${req.kind} ${req.name}`, total: 0, sites: [] };
    default:
      return { title: `verifier: ${req.kind}`, total: 0, sites: [] };
  }
}

/** Collects denials from the host side and from the steps. */
export class DenialCollector {
  readonly #denials: Denial[] = [];
  #dropped = 0;
  #step: number | null = null;
  readonly #pending = new Map<number, VerifierRequestEvent>();
  /** Denied steps with an address still to resolve: denial index -> address expression. */
  readonly #stepAddrs = new Map<number, string>();

  /** The observer to install on the machine. */
  readonly observer: VmObserver = {
    verifierRequest: (e) => void this.#pending.set(e.seq, e),
    verdict: (e) => this.#verdict(e),
    exit: (e) => this.#exit(e),
  };

  /** Denials so far, in order. */
  get denials(): readonly Denial[] {
    return this.#denials;
  }

  /** Denials not kept (beyond {@link MAX_DENIALS}). */
  get dropped(): number {
    return this.#dropped;
  }

  /** A step starts: what happens now belongs to it. */
  stepStarted(index: number): void {
    this.#step = index;
  }

  /** A step ended; a denied one is a denial itself, at its address when it has one. */
  stepFinished(index: number, op: string, outcome: StepOutcome, addr: string | undefined): void {
    if (outcome.outcome === 'denied') {
      const at = this.#add({ source: 'step', step: index, title: `step ${index} ${op}`, reason: outcome.reason, sites: [], moreSites: 0 });
      if (at !== undefined && addr !== undefined) this.#stepAddrs.set(at, addr);
    }
    this.#step = null;
  }

  /**
   * Resolves the denied steps' addresses (`symbol+off` or hex) now that the run is over;
   * an address that no longer resolves is named in the label, without a place.
   */
  resolveSteps(resolve: (addr: string) => { ok: true; value: bigint } | { ok: false; error: string }): void {
    for (const [at, addr] of this.#stepAddrs) {
      const d = this.#denials[at]!;
      const r = resolve(addr);
      this.#denials[at] = { ...d, sites: r.ok ? [{ va: r.value, label: addr }] : [{ label: `${addr} (not resolved: ${r.error})` }] };
    }
    this.#stepAddrs.clear();
  }

  #add(d: Omit<Denial, 'id'>): number | undefined {
    if (this.#denials.length >= MAX_DENIALS) {
      this.#dropped++;
      return undefined;
    }
    this.#denials.push({ id: this.#denials.length + 1, ...d });
    return this.#denials.length - 1;
  }

  #verdict(e: VerdictEvent): void {
    const req = this.#pending.get(e.seq);
    this.#pending.delete(e.seq);
    if (e.verdict.ok) return;
    let title = `verifier: ${e.kind}`;
    let sites: DenialSite[] = [];
    let total = 0;
    if (req) {
      const s = requestSites(req.request(), e.verdict);
      ({ title, sites, total } = s);
    }
    const reason = e.verdict.retryable ? `${e.verdict.reason} (retryable: the verifier was busy)` : e.verdict.reason;
    this.#add({ source: 'verifier', step: this.#step, title, reason, sites, moreSites: Math.max(0, total - sites.length) });
  }

  #exit(e: ExitEvent): void {
    const x = e.exit;
    const vmm = `VMM: ${e.action}${e.note ? ` (${e.note})` : ''}`;
    if (x.reason === 'ept-violation') {
      const site: DenialSite = {
        gpa: Number(x.gpa),
        ...(x.gva !== undefined ? { va: x.gva } : {}),
        label: x.pageWalk ? 'page-walk access' : `${x.access} access`,
      };
      this.#add({
        source: 'ept-violation',
        step: this.#step,
        title: `EPT violation: ${x.access} (${x.mode})`,
        reason: `${x.access} by ${x.mode} at gpa ${hex(x.gpa)}${x.gva !== undefined ? ` (va ${hex(x.gva)})` : ''}: EPT ${eptString(x.perms)}; ${vmm}`,
        sites: [site],
        moreSites: 0,
      });
    } else if (x.reason === 'heki-denial') {
      const d = x.denial;
      if (d.kind === 'verification') return; // the verdict itself is the denial
      if (d.kind === 'immutable') {
        this.#add({
          source: 'heki-denial',
          step: this.#step,
          title: 'Heki: immutable page',
          reason: `change of an IMMUTABLE frame refused: ${eptString(d.current)} -> ${eptString(d.requested)}; ${vmm}`,
          sites: [{ gpa: d.frame * 4096, label: `frame ${hex(d.frame)}` }],
          moreSites: 0,
        });
      } else if (d.kind === 'cr-pin') {
        this.#add({
          source: 'heki-denial',
          step: this.#step,
          title: `Heki: CR${d.cr} pin`,
          reason: `mov to CR${d.cr} would clear pinned bits ${hex(d.cleared)}; ${vmm}`,
          sites: [],
          moreSites: 0,
        });
      } else {
        this.#add({
          source: 'heki-denial',
          step: this.#step,
          title: `Heki: bad pin of CR${d.cr}`,
          reason: `pin mask ${hex(d.mask)} refused; ${vmm}`,
          sites: [],
          moreSites: 0,
        });
      }
    }
  }
}
