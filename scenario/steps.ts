/**
 * The parameters of every step kind: which keys each takes and how they are read. One table
 * entry per kind, checked complete by TypeScript; docs/scenarios.md documents the same keys
 * in the same order. Every step also takes `expect`, read by the parser, not here.
 */
import { resolve } from 'node:path';
import { ok } from '../shared/result.ts';
import { SAVE_MEMORY_MAX } from '../machine/machine-api.ts';
import type { MapReader } from './map-reader.ts';
import type { MemoryPerm, PokeKind, StepAction, StepKind } from './scenario.ts';
import {
  CR_BITS,
  parseAddressExpr,
  parseCount,
  parseCrBits,
  parseFtraceTarget,
  parseHexBytes,
  parseHypercallNr,
  parseImageName,
  parseInteger,
  parseModuleName,
  parseMsr,
  quote,
} from './values.ts';

/** Limits on sizes, so a typo cannot ask for gigabytes. */
export const LIMITS = {
  /** set-memory `pages`: 1 GiB of 4 KiB pages. */
  pages: 262_144,
  /** read `len`, write/text-poke `bytes`. */
  accessBytes: 65_536,
  /** bpf-jit `image` / `size`. */
  jitBytes: 1 << 20,
  /** hypercall `args`: a0..a3 (KVM passes four in rbx, rcx, rdx, rsi). */
  hypercallArgs: 4,
  /** save-memory `len`: the machine's own bound. */
  saveBytes: SAVE_MEMORY_MAX,
} as const;

const MODES = ['kernel', 'user'] as const;
const KEXEC_TAMPER = ['image', 'manifest'] as const;
const KEXEC_SIGNERS = ['vendor', 'untrusted'] as const;

/** An optional path, resolved against the scenario's folder; undefined when absent or empty (a problem). */
function optionalPath(f: MapReader, ctx: StepContext, key: string): string | undefined | null {
  const p = f.text(key);
  if (p === undefined) return f.has(key) ? null : undefined;
  if (p.trim() === '') {
    f.problem(f.at(key), `'${key}' must not be empty`);
    return null;
  }
  return resolve(ctx.dir, p);
}
const PERMS: readonly MemoryPerm[] = ['ro', 'rw', 'x', 'nx', 'rox'];
const POKE_KINDS: readonly PokeKind[] = ['ftrace', 'jump-label', 'static-call', 'kprobe'];

/** What a step parser gets besides its mapping. */
export interface StepContext {
  /** The scenario file's folder: relative paths resolve against it. */
  readonly dir: string;
}

/** How one step kind is read. */
export interface StepSpec<K extends StepKind> {
  /** Its keys, besides `expect`. */
  readonly keys: readonly string[];
  /** Reads the action; undefined when a problem was recorded. */
  parse(f: MapReader, ctx: StepContext): Extract<StepAction, { op: K }> | undefined;
}

/**
 * A JIT image of `size` bytes that looks like what the x86 BPF JIT emits: the 5-byte NOP
 * the JIT leaves for tail calls, `push rbp; mov rbp, rsp`, NOPs, `leave; ret`.
 */
export function generateJitImage(size: number): Uint8Array {
  const prologue = [0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5];
  const epilogue = [0xc9, 0xc3];
  const img = new Uint8Array(size).fill(0x90);
  if (size >= prologue.length + epilogue.length) {
    img.set(prologue, 0);
    img.set(epilogue, size - epilogue.length);
  } else {
    img[size - 1] = 0xc3;
  }
  return img;
}

/** A module step's `path`: required, not empty, resolved against the scenario's folder. */
function readModulePath(f: MapReader, ctx: StepContext): string | undefined {
  const p = f.text('path', true);
  if (p === undefined) return undefined;
  if (p.trim() === '') {
    f.problem(f.at('path'), `'path' must not be empty`);
    return undefined;
  }
  return resolve(ctx.dir, p);
}

/** Reads `cr` as 0, 3, 4 or cr0/CR3/CR4. */
function readCr(f: MapReader): 0 | 3 | 4 | undefined {
  return f.parsed(
    'cr',
    (t) => {
      const m = /^(?:cr)?([034])$/i.exec(t.trim());
      return m ? ok(Number(m[1]) as 0 | 3 | 4) : { ok: false, error: `must be 0, 3 or 4 (CR2 and CR8 are not moves a scenario can test), got ${quote(t)}` };
    },
    true,
  );
}

/** Every step kind's spec. */
export const STEP_SPECS = {
  boot: {
    keys: [],
    parse: () => ({ op: 'boot' }),
  },
  'load-module': {
    keys: ['path'],
    parse(f, ctx) {
      const path = readModulePath(f, ctx);
      return path === undefined ? undefined : { op: 'load-module', path };
    },
  },
  'unload-module': {
    keys: ['name', 'path'],
    parse(f, ctx) {
      const by = f.exactlyOne(['name', 'path'] as const);
      if (by === 'path') {
        const path = readModulePath(f, ctx);
        return path === undefined ? undefined : { op: 'unload-module', path };
      }
      if (by === undefined) return undefined;
      const name = f.parsed('name', parseModuleName, true);
      return name === undefined ? undefined : { op: 'unload-module', name };
    },
  },
  ftrace: {
    keys: ['enable', 'disable'],
    parse(f) {
      const action = f.exactlyOne(['enable', 'disable'] as const);
      if (action === undefined) return undefined;
      const target = f.parsed(action, parseFtraceTarget, true);
      return target === undefined ? undefined : { op: 'ftrace', action, target };
    },
  },
  'jump-label': {
    keys: ['enable', 'disable'],
    parse(f) {
      const action = f.exactlyOne(['enable', 'disable'] as const);
      if (action === undefined) return undefined;
      const key = f.parsed(action, parseAddressExpr, true);
      return key === undefined ? undefined : { op: 'jump-label', action, key };
    },
  },
  'static-call': {
    keys: ['key', 'target'],
    parse(f) {
      const key = f.parsed('key', parseAddressExpr, true);
      const raw = f.textOrNull('target', true);
      let target: string | null | undefined = raw === null ? null : undefined;
      if (typeof raw === 'string') {
        const r = parseAddressExpr(raw);
        if (r.ok) target = r.value;
        else f.problem(f.at('target'), `'target' ${r.error} (or null)`);
      }
      if (key === undefined || target === undefined) return undefined;
      return { op: 'static-call', key, target };
    },
  },
  'set-memory': {
    keys: ['addr', 'pages', 'perm'],
    parse(f) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const pages = f.has('pages') ? f.parsed('pages', (t) => parseCount(t, 1, LIMITS.pages)) : 1;
      const perm = f.choice('perm', PERMS);
      if (addr === undefined || pages === undefined || perm === undefined) return undefined;
      return { op: 'set-memory', addr, pages, perm };
    },
  },
  'text-poke': {
    keys: ['addr', 'bytes', 'kind'],
    parse(f) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const bytes = f.parsed('bytes', (t) => parseHexBytes(t, LIMITS.accessBytes), true);
      const kind = f.has('kind') ? f.choice('kind', POKE_KINDS) : undefined;
      if (addr === undefined || bytes === undefined || (f.has('kind') && kind === undefined)) return undefined;
      return kind === undefined ? { op: 'text-poke', addr, bytes } : { op: 'text-poke', addr, bytes, kind };
    },
  },
  kprobe: {
    keys: ['addr', 'remove'],
    parse(f) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const remove = f.bool('remove', false);
      if (addr === undefined || remove === undefined) return undefined;
      return { op: 'kprobe', addr, action: remove ? 'remove' : 'install' };
    },
  },
  'bpf-jit': {
    keys: ['name', 'image', 'size', 'signed'],
    parse(f) {
      const name = f.parsed('name', parseImageName, true);
      const source = f.exactlyOne(['image', 'size'] as const);
      const image =
        source === 'image'
          ? f.parsed('image', (t) => parseHexBytes(t, LIMITS.jitBytes), true)
          : source === 'size'
            ? f.parsed('size', (t) => {
                const n = parseCount(t, 1, LIMITS.jitBytes);
                return n.ok ? ok(generateJitImage(n.value)) : n;
              })
            : undefined;
      const signed = f.bool('signed', true);
      if (name === undefined || image === undefined || signed === undefined) return undefined;
      return { op: 'bpf-jit', name, image, signed };
    },
  },
  read: {
    keys: ['addr', 'len', 'mode'],
    parse(f) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const len = f.has('len') ? f.parsed('len', (t) => parseCount(t, 1, LIMITS.accessBytes)) : 1;
      const mode = f.choice('mode', MODES, 'kernel');
      if (addr === undefined || len === undefined || mode === undefined) return undefined;
      return { op: 'read', addr, len, mode };
    },
  },
  write: {
    keys: ['addr', 'bytes', 'mode'],
    parse(f) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const bytes = f.parsed('bytes', (t) => parseHexBytes(t, LIMITS.accessBytes), true);
      const mode = f.choice('mode', MODES, 'kernel');
      if (addr === undefined || bytes === undefined || mode === undefined) return undefined;
      return { op: 'write', addr, bytes, mode };
    },
  },
  exec: {
    keys: ['addr', 'mode'],
    parse(f) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const mode = f.choice('mode', MODES, 'kernel');
      if (addr === undefined || mode === undefined) return undefined;
      return { op: 'exec', addr, mode };
    },
  },
  'write-cr': {
    keys: ['cr', 'value', 'set', 'clear'],
    parse(f) {
      const cr = readCr(f);
      const value = f.has('value') ? f.parsed('value', (t) => parseInteger(t)) : undefined;
      const bits = (key: 'set' | 'clear'): bigint | undefined => {
        if (!f.has(key) || cr === undefined) return undefined;
        const items = f.texts(key, { scalarOk: true });
        if (items === undefined) return undefined;
        const mask = parseCrBits(cr, items);
        if (!mask.ok) f.problem(f.at(key), `'${key}' ${mask.error}`);
        return mask.ok ? mask.value : undefined;
      };
      const set = bits('set');
      const clear = bits('clear');
      if (cr === undefined) return undefined;
      if (!f.has('value') && !f.has('set') && !f.has('clear')) {
        f.problem(f.at('cr'), `needs 'value', or 'set' and/or 'clear'`);
        return undefined;
      }
      if (f.has('value') && (f.has('set') || f.has('clear'))) {
        f.problem(f.at(f.has('set') ? 'set' : 'clear'), `'value' replaces the whole register; it cannot be combined with 'set' or 'clear'`);
        return undefined;
      }
      if ((f.has('value') && value === undefined) || (f.has('set') && set === undefined) || (f.has('clear') && clear === undefined)) {
        return undefined;
      }
      if (set !== undefined && clear !== undefined && (set & clear) !== 0n) {
        const both = Object.entries(CR_BITS[cr])
          .filter(([, b]) => (set & clear & b) !== 0n)
          .map(([n]) => n);
        f.problem(f.at('clear'), `'set' and 'clear' both name ${both.length > 0 ? both.join(', ') : `0x${(set & clear).toString(16)}`}`);
        return undefined;
      }
      return {
        op: 'write-cr',
        cr,
        ...(value !== undefined ? { value } : {}),
        ...(set !== undefined ? { set } : {}),
        ...(clear !== undefined ? { clear } : {}),
      };
    },
  },
  'write-msr': {
    keys: ['msr', 'value'],
    parse(f) {
      const msr = f.parsed('msr', parseMsr, true);
      const value = f.parsed('value', (t) => parseInteger(t), true);
      if (msr === undefined || value === undefined) return undefined;
      return { op: 'write-msr', msr, value };
    },
  },
  hypercall: {
    keys: ['nr', 'args'],
    parse(f) {
      const nr = f.parsed('nr', parseHypercallNr, true);
      const texts = f.texts('args', { max: LIMITS.hypercallArgs });
      let args: bigint[] | undefined = [];
      texts?.forEach((t, i) => {
        const v = parseInteger(t);
        if (!v.ok) f.problem(f.itemAt('args', i), `'args[${i}]' ${v.error}`);
        if (args !== undefined) args = v.ok ? [...args, v.value] : undefined;
      });
      if (nr === undefined || texts === undefined || args === undefined) return undefined;
      return { op: 'hypercall', nr, args };
    },
  },
  reboot: {
    keys: [],
    parse: () => ({ op: 'reboot' }),
  },
  kexec: {
    keys: ['image', 'manifest', 'system-map', 'crash', 'tamper', 'signer'],
    parse(f, ctx) {
      const image = optionalPath(f, ctx, 'image');
      const manifest = optionalPath(f, ctx, 'manifest');
      const systemMap = optionalPath(f, ctx, 'system-map');
      const crash = f.bool('crash', false);
      const tamper = f.has('tamper') ? f.choice('tamper', KEXEC_TAMPER) : undefined;
      const signer = f.choice('signer', KEXEC_SIGNERS, 'vendor');
      if (image === null || manifest === null || systemMap === null || crash === undefined || signer === undefined || (f.has('tamper') && tamper === undefined))
        return undefined;
      if (manifest !== undefined && f.has('signer')) {
        f.problem(f.at('signer'), `'signer' chooses who signs the manifest the host builds; with 'manifest' the file's own signature counts`);
        return undefined;
      }
      return {
        op: 'kexec',
        crash,
        signer,
        ...(image !== undefined ? { image } : {}),
        ...(manifest !== undefined ? { manifest } : {}),
        ...(systemMap !== undefined ? { systemMap } : {}),
        ...(tamper !== undefined ? { tamper } : {}),
      };
    },
  },
  panic: {
    keys: [],
    parse: () => ({ op: 'panic' }),
  },
  hibernate: {
    keys: [],
    parse: () => ({ op: 'hibernate' }),
  },
  resume: {
    keys: ['tamper'],
    parse(f) {
      const tamper = f.bool('tamper', false);
      return tamper === undefined ? undefined : { op: 'resume', tamper };
    },
  },
  migrate: {
    keys: ['tamper'],
    parse(f) {
      const tamper = f.bool('tamper', false);
      return tamper === undefined ? undefined : { op: 'migrate', tamper };
    },
  },
  'cpu-online': {
    keys: [],
    parse: () => ({ op: 'cpu-online' }),
  },
  'save-memory': {
    keys: ['addr', 'len', 'out'],
    parse(f, ctx) {
      const addr = f.parsed('addr', parseAddressExpr, true);
      const len = f.parsed('len', (t) => parseCount(t, 1, LIMITS.saveBytes), true);
      if (!f.has('out')) f.missing('out');
      const out = optionalPath(f, ctx, 'out');
      if (addr === undefined || len === undefined || typeof out !== 'string') return undefined;
      return { op: 'save-memory', addr, len, out };
    },
  },
} satisfies { readonly [K in StepKind]: StepSpec<K> };
