/**
 * Typed results for trust boundaries (ARCHITECTURE.md rule 6): code that handles input from
 * another domain returns one of these instead of throwing. `throw` is kept for broken
 * internal invariants only.
 */

/** Success with a value, or failure with a typed error. */
export type Result<T, E> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

/** A successful result. */
export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

/** A failed result. */
export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
