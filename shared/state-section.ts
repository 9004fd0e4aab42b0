/**
 * One state section of a VM state image (shared/vm-image.ts) as bytes: UTF-8 JSON
 * `{"section": name, "version": n, "data": ...}`, where `data` follows the section's declared
 * schema (shared/state-schema.ts) of that version. The name and version are checked before
 * `data` is read, so an image whose section is of another schema version is refused naming
 * both versions rather than misread.
 *
 * Capturing state and encoding it are separate steps: a section's producer builds the plain
 * object (VmCore.saveState, saveGuestKernel, the verifier's exportVm), and only
 * {@link encodeSection} turns it into bytes; a consumer that keeps state in memory (a VM
 * fork) can take the object without ever encoding it.
 */
import { type Result, err } from './result.ts';
import type { Schema } from './state-schema.ts';

/** A section's declared format: its name in the image, its schema version, its schema. */
export interface SectionFormat<T> {
  readonly name: string;
  readonly version: number;
  readonly schema: Schema<T>;
}

/** Longest section read as JSON (64 MiB: the state sections are kilobytes; module files add megabytes). */
const SECTION_MAX = 64 << 20;

/** The bytes of `value` as section `format`. */
export function encodeSection<T>(format: SectionFormat<T>, value: T): Uint8Array {
  const text = JSON.stringify({ section: format.name, version: format.version, data: format.schema.encode(value) });
  return new TextEncoder().encode(text);
}

/**
 * Reads section `format` from `bytes` (of unknown origin); the error names the section and the
 * field: `core section: data.vcpus[0].cr0 must be a hex integer string ("0x1f")`.
 */
export function decodeSection<T>(format: SectionFormat<T>, bytes: Uint8Array): Result<T, string> {
  const where = `${format.name} section`;
  if (bytes.length > SECTION_MAX) return err(`${where}: ${bytes.length} bytes is more than ${SECTION_MAX}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    return err(`${where}: not UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return err(`${where}: not a JSON object`);
  const o = json as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => k !== 'section' && k !== 'version' && k !== 'data');
  if (extra !== undefined) return err(`${where}: unknown field ${extra}`);
  if (o.section !== format.name) return err(`${where}: it says it is section ${JSON.stringify(o.section)}`);
  if (o.version !== format.version) {
    return err(`${where}: schema version ${JSON.stringify(o.version)} is not ${format.version}, the only version this heki-sim reads`);
  }
  if (!Object.hasOwn(o, 'data')) return err(`${where}: data is missing`);
  const d = format.schema.decode(o.data, 'data');
  return d.ok ? d : err(`${where}: ${d.error}`);
}
