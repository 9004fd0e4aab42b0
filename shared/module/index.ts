/** The module loader's core (layout, relocation, ftrace sites, jump entries, exports): re-exports only. */
export * from './errors.ts';
export * from './jump-table.ts';
export * from './ksymtab.ts';
export * from './layout.ts';
export * from './mcount.ts';
export * from './modinfo.ts';
export * from './module-image.ts';
export * from './module-sections.ts';
export * from './placed-memory.ts';
export * from './relocate.ts';
export * from './symbols.ts';
export * from './module-name.ts';
