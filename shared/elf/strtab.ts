/**
 * Reading NUL-terminated names out of an ELF string table (`SHT_STRTAB`).
 */

const decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * The NUL-terminated string at `offset` in `table`, or `undefined` when the offset is past
 * the table or the string runs off its end without a NUL.
 */
export function readCString(table: Uint8Array, offset: number): string | undefined {
  if (!Number.isInteger(offset) || offset < 0 || offset >= table.length) return undefined;
  const end = table.indexOf(0, offset);
  if (end < 0) return undefined;
  // Names are almost always ASCII: build them directly, which beats TextDecoder on short strings.
  // Names are almost always ASCII, where latin1 and UTF-8 agree: Buffer's latin1 decoding makes
  // a flat string in one native call (a string built a character at a time is a rope, which
  // every later Map lookup of the name must flatten first).
  let ascii = true;
  for (let i = offset; i < end; i++) {
    if (table[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return (Buffer.isBuffer(table) ? table : Buffer.from(table.buffer, table.byteOffset, table.byteLength)).toString('latin1', offset, end);
  return decoder.decode(table.subarray(offset, end));
}
