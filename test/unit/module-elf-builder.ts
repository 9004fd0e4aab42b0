/**
 * A small builder of relocatable x86-64 ELF objects for the module-core tests: named
 * sections with bytes (or NOBITS sizes), symbols, and RELA sections, laid out as a `.ko` is.
 * Not a test file itself (ava runs `*.test.ts` only).
 */
import {
  EM_X86_64,
  ET_REL,
  SHF_INFO_LINK,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_PROGBITS,
  SHT_RELA,
  SHT_STRTAB,
  SHT_SYMTAB,
  STB_GLOBAL,
  STB_LOCAL,
  STT_NOTYPE,
  STT_SECTION,
} from '../../shared/elf/types.ts';

/** A section to emit. */
export interface SectionSpec {
  name: string;
  flags: number;
  align?: number;
  /** Contents; omit with `nobits` to get SHT_NOBITS of `size`. */
  data?: Uint8Array;
  nobits?: boolean;
  size?: number;
  type?: number;
}

/** A symbol to emit; `section` is a section name, or a number (SHN_* or an index). */
export interface SymbolSpec {
  name: string;
  section?: string | number;
  value?: bigint;
  bind?: number;
  type?: number;
}

/** A relocation; `sym` is a symbol name, or `{ section }` for that section's STT_SECTION symbol. */
export interface RelaSpec {
  offset: number;
  type: number;
  sym: string | { section: string };
  addend?: bigint;
}

/** The whole object. */
export interface ObjectSpec {
  sections: SectionSpec[];
  symbols?: SymbolSpec[];
  relocations?: Record<string, RelaSpec[]>;
  /** Override e_type. */
  elfType?: number;
}

function strtab(names: readonly string[]): { bytes: Uint8Array; offset: Map<string, number> } {
  const offset = new Map<string, number>();
  const parts: number[] = [0];
  for (const n of names) {
    if (n === '' || offset.has(n)) continue;
    offset.set(n, parts.length);
    for (const c of new TextEncoder().encode(n)) parts.push(c);
    parts.push(0);
  }
  return { bytes: Uint8Array.from(parts), offset };
}

/** `key=value` strings, NUL-separated, as `.modinfo` holds them. */
export function modinfoBytes(entries: Record<string, string>): Uint8Array {
  return new TextEncoder().encode(
    Object.entries(entries)
      .map(([k, v]) => `${k}=${v}\0`)
      .join(''),
  );
}

/** Builds the object. Section indices: 1.. in spec order, then .rela*, .symtab, .strtab, .shstrtab. */
export function buildObject(spec: ObjectSpec): Uint8Array {
  const secs = spec.sections;
  const relaNames = Object.keys(spec.relocations ?? {});
  const index = new Map<string, number>();
  secs.forEach((s, i) => index.set(s.name, i + 1));
  const relaBase = secs.length + 1;
  const symtabIdx = relaBase + relaNames.length;
  const strtabIdx = symtabIdx + 1;
  const shstrIdx = strtabIdx + 1;
  const shnum = shstrIdx + 1;

  // Symbols: null, section symbols (local), then the given ones (locals first, then globals).
  type Sym = { name: string; shndx: number; value: bigint; info: number };
  const syms: Sym[] = [{ name: '', shndx: 0, value: 0n, info: 0 }];
  const sectionSym = new Map<string, number>();
  secs.forEach((s, i) => {
    sectionSym.set(s.name, syms.length);
    syms.push({ name: '', shndx: i + 1, value: 0n, info: (STB_LOCAL << 4) | STT_SECTION });
  });
  const given = spec.symbols ?? [];
  const ordered = [...given.filter((g) => (g.bind ?? STB_GLOBAL) === STB_LOCAL), ...given.filter((g) => (g.bind ?? STB_GLOBAL) !== STB_LOCAL)];
  const firstGlobal = syms.length + given.filter((g) => (g.bind ?? STB_GLOBAL) === STB_LOCAL).length;
  const symIndex = new Map<string, number>();
  for (const g of ordered) {
    const shndx = g.section === undefined ? SHN_UNDEF : typeof g.section === 'number' ? g.section : index.get(g.section)!;
    symIndex.set(g.name, syms.length);
    syms.push({ name: g.name, shndx, value: g.value ?? 0n, info: ((g.bind ?? STB_GLOBAL) << 4) | (g.type ?? STT_NOTYPE) });
  }
  const str = strtab(syms.map((s) => s.name));
  const shNames = [...secs.map((s) => s.name), ...relaNames.map((n) => `.rela${n}`), '.symtab', '.strtab', '.shstrtab'];
  const shstr = strtab(shNames);

  const chunks: Array<{ idx: number; bytes: Uint8Array; align: number }> = [];
  secs.forEach((s, i) => {
    if (!s.nobits) chunks.push({ idx: i + 1, bytes: s.data ?? new Uint8Array(0), align: s.align ?? 1 });
  });
  relaNames.forEach((n, j) => {
    const entries = spec.relocations![n]!;
    const b = new Uint8Array(entries.length * 24);
    const dv = new DataView(b.buffer);
    entries.forEach((e, k) => {
      const si = typeof e.sym === 'string' ? symIndex.get(e.sym) : sectionSym.get(e.sym.section);
      if (si === undefined) throw new Error(`no symbol ${JSON.stringify(e.sym)}`);
      dv.setBigUint64(k * 24, BigInt(e.offset), true);
      dv.setBigUint64(k * 24 + 8, (BigInt(si) << 32n) | BigInt(e.type), true);
      dv.setBigInt64(k * 24 + 16, e.addend ?? 0n, true);
    });
    chunks.push({ idx: relaBase + j, bytes: b, align: 8 });
  });
  const symBytes = new Uint8Array(syms.length * 24);
  const sdv = new DataView(symBytes.buffer);
  syms.forEach((s, k) => {
    sdv.setUint32(k * 24, s.name === '' ? 0 : str.offset.get(s.name)!, true);
    sdv.setUint8(k * 24 + 4, s.info);
    sdv.setUint16(k * 24 + 6, s.shndx, true);
    sdv.setBigUint64(k * 24 + 8, s.value, true);
  });
  chunks.push({ idx: symtabIdx, bytes: symBytes, align: 8 }, { idx: strtabIdx, bytes: str.bytes, align: 1 }, { idx: shstrIdx, bytes: shstr.bytes, align: 1 });

  const offsets = new Map<number, number>();
  let pos = 64;
  for (const c of chunks) {
    pos = Math.ceil(pos / c.align) * c.align;
    offsets.set(c.idx, pos);
    pos += c.bytes.length;
  }
  const shoff = Math.ceil(pos / 8) * 8;
  const out = new Uint8Array(shoff + shnum * 64);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, spec.elfType ?? ET_REL, true);
  dv.setUint16(18, EM_X86_64, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(40, BigInt(shoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, shnum, true);
  dv.setUint16(62, shstrIdx, true);
  for (const c of chunks) out.set(c.bytes, offsets.get(c.idx)!);
  const shdr = (
    i: number,
    f: { type: number; flags?: number; offset: number; size: number; link?: number; info?: number; align?: number; entsize?: number },
  ): void => {
    const o = shoff + i * 64;
    dv.setUint32(o, shstr.offset.get(shNames[i - 1]!) ?? 0, true);
    dv.setUint32(o + 4, f.type, true);
    dv.setBigUint64(o + 8, BigInt(f.flags ?? 0), true);
    dv.setBigUint64(o + 24, BigInt(f.offset), true);
    dv.setBigUint64(o + 32, BigInt(f.size), true);
    dv.setUint32(o + 40, f.link ?? 0, true);
    dv.setUint32(o + 44, f.info ?? 0, true);
    dv.setBigUint64(o + 48, BigInt(f.align ?? 1), true);
    dv.setBigUint64(o + 56, BigInt(f.entsize ?? 0), true);
  };
  secs.forEach((s, i) => {
    const size = s.nobits ? (s.size ?? 0) : (s.data?.length ?? 0);
    shdr(i + 1, { type: s.type ?? (s.nobits ? SHT_NOBITS : SHT_PROGBITS), flags: s.flags, offset: offsets.get(i + 1) ?? 0, size, align: s.align ?? 1 });
  });
  relaNames.forEach((n, j) => {
    const c = chunks.find((x) => x.idx === relaBase + j)!;
    shdr(relaBase + j, {
      type: SHT_RELA,
      flags: SHF_INFO_LINK,
      offset: offsets.get(relaBase + j)!,
      size: c.bytes.length,
      link: symtabIdx,
      info: index.get(n)!,
      align: 8,
      entsize: 24,
    });
  });
  shdr(symtabIdx, { type: SHT_SYMTAB, offset: offsets.get(symtabIdx)!, size: symBytes.length, link: strtabIdx, info: firstGlobal, align: 8, entsize: 24 });
  shdr(strtabIdx, { type: SHT_STRTAB, offset: offsets.get(strtabIdx)!, size: str.bytes.length });
  shdr(shstrIdx, { type: SHT_STRTAB, offset: offsets.get(shstrIdx)!, size: shstr.bytes.length });
  return out;
}

/** Section flags shorthands. */
export const A = 0x2;
export const WA = 0x3;
export const AX = 0x6;

/**
 * A small, valid module: `.text` (a function `f` starting with `call __fentry__`, listed in
 * `__mcount_loc`), `.init.text`, `.rodata`, `.data..ro_after_init`, `.data`, `.bss`,
 * `.modinfo` (name=synth), `__ksymtab` exporting `f`, `__ksymtab_strings`, and a
 * `__jump_table` entry for a 2-byte NOP in `.text`. `extra` sections, symbols and
 * relocations are appended.
 */
export function syntheticModule(extra: Partial<ObjectSpec> & { modinfo?: Record<string, string> } = {}): Uint8Array {
  // .text: f: call __fentry__ (e8 00000000); nop2 (66 90) as a jump site; ret; pad
  const text = Uint8Array.from([0xe8, 0, 0, 0, 0, 0x66, 0x90, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]);
  const strings = new TextEncoder().encode('f\0');
  return buildObject({
    elfType: extra.elfType,
    sections: [
      { name: '.text', flags: AX, align: 16, data: text },
      { name: '.init.text', flags: AX, align: 1, data: Uint8Array.from([0xc3]) },
      { name: '.rodata', flags: A, align: 8, data: new Uint8Array(24) },
      { name: '.data..ro_after_init', flags: WA, align: 8, data: new Uint8Array(8) },
      { name: '.data', flags: WA, align: 64, data: new Uint8Array(40) },
      { name: '.bss', flags: WA, align: 32, nobits: true, size: 100 },
      { name: '.modinfo', flags: A, align: 1, data: modinfoBytes(extra.modinfo ?? { name: 'synth', license: 'GPL', depends: '' }) },
      { name: '__mcount_loc', flags: A, align: 1, data: new Uint8Array(8) },
      { name: '__ksymtab', flags: A, align: 4, data: new Uint8Array(12) },
      { name: '__ksymtab_strings', flags: A | 0x30, align: 1, data: strings },
      { name: '__jump_table', flags: WA, align: 8, data: new Uint8Array(16) },
      ...(extra.sections ?? []),
    ],
    symbols: [{ name: 'f', section: '.text', value: 0n, type: 2 }, { name: '__fentry__' }, { name: 'some_key' }, ...(extra.symbols ?? [])],
    relocations: {
      '.text': [{ offset: 1, type: 4 /* PLT32 */, sym: '__fentry__', addend: -4n }],
      __mcount_loc: [{ offset: 0, type: 1 /* 64 */, sym: { section: '.text' }, addend: 0n }],
      __ksymtab: [
        { offset: 0, type: 2 /* PC32 */, sym: 'f', addend: 0n },
        { offset: 4, type: 2, sym: { section: '__ksymtab_strings' }, addend: 0n },
      ],
      __jump_table: [
        { offset: 0, type: 2, sym: { section: '.text' }, addend: 5n },
        { offset: 4, type: 2, sym: { section: '.text' }, addend: 7n },
        { offset: 8, type: 24 /* PC64 */, sym: 'some_key', addend: 1n },
      ],
      ...(extra.relocations ?? {}),
    },
  });
}

/** Addresses the synthetic module's undefined symbols resolve to. */
export const SYNTH_FENTRY = 0xffffffff81076650n;
export const SYNTH_KEY = 0xffffffff82a01000n;
/** A resolver for {@link syntheticModule}. */
export const synthResolve = (name: string): bigint | undefined => (name === '__fentry__' ? SYNTH_FENTRY : name === 'some_key' ? SYNTH_KEY : undefined);
