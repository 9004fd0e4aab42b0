/** Numbers as the report writes them: hex addresses and binary sizes. */

/** `0x1000000` for a number or bigint address. */
export function hexAddr(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** `512 B`, `4 KiB`, `14.0 MiB`, `1 GiB`: one decimal unless exact. */
export function sizeText(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}
