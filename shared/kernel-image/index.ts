/** Kernel image handling (bzImage, xz, System.map, vmlinux layout): re-exports only. */
export * from './bzimage.ts';
export * from './exports.ts';
export * from './fixture-paths.ts';
export * from './jump-table.ts';
export * from './kernel-image-errors.ts';
export * from './kernel-layout.ts';
export * from './load-kernel.ts';
export * from './mcount.ts';
export * from './static-calls.ts';
export * from './system-map.ts';
export * from './vmlinux-cache.ts';
export * from './vmlinux.ts';
export * from './xz.ts';
