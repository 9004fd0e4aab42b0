/**
 * `sort_r()` of Linux 6.1 lib/sort.c, step for step: a bottom-up heapsort, so not stable.
 * Where a kernel sort compares only part of an entry (static_call_site_cmp() looks at the key
 * alone), the order of equal entries is whatever this algorithm leaves, and a table the kernel
 * sorted in place can only be predicted byte for byte by running the same algorithm.
 */

/** Sorts `items` in place exactly as `sort_r(base, num, size, cmp, swap)` orders the elements. */
export function linuxSort<T>(items: T[], cmp: (a: T, b: T) => number): void {
  const num = items.length;
  let n = num;
  let a = Math.floor(num / 2);
  if (a === 0) return;
  const swap = (i: number, j: number): void => {
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  };
  // parent() in element units: (i - 1) / 2, as lib/sort.c's lsbit trick computes in bytes.
  const parent = (i: number): number => Math.floor((i - 1) / 2);
  for (;;) {
    if (a) a--;
    else if (--n) swap(0, n);
    else break;
    let b = a;
    let c: number;
    let d: number;
    for (; (c = 2 * b + 1), (d = c + 1) < n;) b = cmp(items[c]!, items[d]!) >= 0 ? c : d;
    if (d === n) b = c;
    while (b !== a && cmp(items[a]!, items[b]!) >= 0) b = parent(b);
    c = b;
    while (b !== a) {
      b = parent(b);
      swap(b, c);
    }
  }
}
