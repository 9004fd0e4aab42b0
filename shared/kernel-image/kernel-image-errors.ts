/**
 * Why a kernel image could not be loaded or understood. Messages name the file and the
 * problem, so a CLI can print them as-is.
 */

/** The kinds of failure while loading a kernel image. */
export type KernelImageErrorKind =
  'missing-file' | 'read-failed' | 'bzimage' | 'system-map' | 'missing-symbol' | 'layout' | 'mcount' | 'jump-table' | 'static-calls' | 'exports';

/** A failed kernel-image load. */
export interface KernelImageError {
  readonly kind: KernelImageErrorKind;
  readonly message: string;
  /** The file involved, when there is one. */
  readonly file?: string;
}

/** Makes a {@link KernelImageError}. */
export function kernelImageError(kind: KernelImageErrorKind, message: string, file?: string): KernelImageError {
  return file === undefined ? { kind, message } : { kind, message, file };
}
