/**
 * Reading an input file from the host, bounded: the one place every command, loader and
 * checker reads a user-named file through (modules, snapshots, scenarios, key files, audit and
 * request logs, kernel images, plugin configs).
 *
 * Invariant: nothing is read unless the path names a regular file (after following symlinks)
 * of at most `maxBytes`. A character device (`/dev/zero`), a FIFO, a socket or a directory is
 * refused by the `fstat` of the opened descriptor, before any read; the open itself is
 * O_NONBLOCK so that opening a FIFO with no writer returns at once instead of blocking
 * (open(2): "O_NONBLOCK ... the open() for reading-only will return without delay"). A
 * regular file that grows while it is read, or a procfs file whose `st_size` is 0, is read at
 * most `maxBytes + 1` bytes: one byte past the bound is the error, never an unbounded read.
 *
 * Every error is a message naming the file (as quoted by {@link quoteForMessage}) and the
 * problem; nothing here throws.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { err, ok, type Result } from './result.ts';
import { quoteForMessage } from './message-text.ts';

/** The bound when a caller names none: a kernel image, a snapshot or a recording fits in it. */
export const DEFAULT_MAX_INPUT_BYTES = 512 << 20;

/** The bounds the project's small text inputs use (key files, revocation lists, configs). */
export const MAX_SMALL_INPUT_BYTES = 1 << 20;

/** How a read is bounded and described. */
export interface HostFileOptions {
  /** Largest accepted size in bytes (default {@link DEFAULT_MAX_INPUT_BYTES}). */
  readonly maxBytes?: number;
  /**
   * How messages name the file (default: the path, quoted and cut); `''` leaves the name out
   * (the message is the problem alone, for callers that name the file themselves).
   */
  readonly display?: string;
}

/** Why a path is not a readable regular file, in words (or undefined when it is one). */
function kindProblem(st: {
  isFile(): boolean;
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string | undefined {
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'is a directory, not a file';
  if (st.isFIFO()) return 'is a FIFO (named pipe), not a regular file';
  if (st.isSocket()) return 'is a socket, not a regular file';
  if (st.isCharacterDevice()) return 'is a character device, not a regular file';
  if (st.isBlockDevice()) return 'is a block device, not a regular file';
  return 'is not a regular file';
}

/** The system's reason for a failed open or read, without Node's stack or syscall noise. */
export function systemReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const reasons: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ELOOP: 'too many levels of symbolic links (a symlink loop?)',
    ENOTDIR: 'a component of the path is not a directory',
    ENAMETOOLONG: 'the name is too long',
    EISDIR: 'is a directory, not a file',
    EIO: 'input/output error',
  };
  if (code !== undefined && reasons[code] !== undefined) return reasons[code]!;
  const msg = e instanceof Error ? e.message : String(e);
  return quoteForMessage(msg, 120, false);
}

/**
 * True when nothing at all is at `path` (not even a dangling symlink or a symlink loop): the
 * case where a caller's message says where such files are usually found.
 */
export function hostPathMissing(path: string): boolean {
  try {
    lstatSync(path);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** `problem`, prefixed with how messages name `path`. */
function problemOf(path: string, o: HostFileOptions | undefined, problem: string): string {
  const name = o?.display ?? quoteForMessage(path);
  return name === '' ? problem : `${name}: ${problem}`;
}

/**
 * Checks that `path` is a regular file of at most `maxBytes` without reading it; the
 * error names the file and the problem. Use it to refuse bad input before anything runs when
 * the file itself is read later by {@link readHostFile}.
 */
export function checkHostFile(path: string, o?: HostFileOptions): Result<{ size: number }, string> {
  const r = withOpenFile(path, o, () => undefined);
  return r.ok ? ok({ size: r.value.size }) : r;
}

/** Opens `path` O_NONBLOCK, checks kind and size on the descriptor, and runs `body` on it. */
function withOpenFile<T>(path: string, o: HostFileOptions | undefined, body: (fd: number, size: number) => T): Result<{ size: number; value: T }, string> {
  const max = o?.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return err(problemOf(path, o, `cannot read: ${systemReason(e)}`));
  }
  try {
    const st = fstatSync(fd);
    const kind = kindProblem(st);
    if (kind !== undefined) return err(problemOf(path, o, `${kind}`));
    if (st.size > max) return err(problemOf(path, o, `${st.size} bytes is too large (at most ${max} bytes)`));
    return ok({ size: st.size, value: body(fd, st.size) });
  } catch (e) {
    if (e instanceof TooLarge) return err(problemOf(path, o, `more than ${max} bytes is too large`));
    return err(problemOf(path, o, `cannot read: ${systemReason(e)}`));
  } finally {
    closeSync(fd);
  }
}

class TooLarge extends Error {}

/**
 * The bytes of the regular file at `path`, at most `maxBytes` of them; or why not (not a
 * regular file, too large, unreadable), naming the file.
 */
export function readHostFile(path: string, o?: HostFileOptions): Result<Uint8Array, string> {
  const max = o?.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  const r = withOpenFile(path, o, (fd, size) => {
    // Read until EOF, never more than max + 1 bytes: st_size is a hint (procfs says 0, a
    // growing file says less than it will hold).
    let buf = Buffer.allocUnsafe(Math.min(Math.max(size, 4096), max + 1));
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (buf.length > max) throw new TooLarge();
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, max + 1));
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    if (n > max) throw new TooLarge();
    return new Uint8Array(buf.buffer, buf.byteOffset, n);
  });
  return r.ok ? ok(r.value.value) : r;
}

/** Options of {@link readHostText}. */
export interface HostTextOptions extends HostFileOptions {
  /** Refuse NUL bytes (text formats where NUL means binary input). Default true. */
  readonly refuseNul?: boolean;
}

/**
 * The regular file at `path` decoded as UTF-8, refusing invalid UTF-8 and (unless told not
 * to) NUL bytes, each with the byte offset of the first bad byte; or why the file cannot be
 * read. A leading byte-order mark is dropped.
 */
export function readHostText(path: string, o?: HostTextOptions): Result<string, string> {
  const bytes = readHostFile(path, o);
  if (!bytes.ok) return bytes;
  const checked = decodeUtf8Text(bytes.value, o?.refuseNul ?? true);
  return checked.ok ? checked : err(problemOf(path, o, `${checked.error}`));
}

/**
 * `bytes` as UTF-8 text, or the problem with the offset of the first bad byte: invalid UTF-8
 * ("not valid UTF-8 at byte 17") or, when `refuseNul`, a NUL byte ("a NUL byte at byte 3: a
 * binary file?").
 */
export function decodeUtf8Text(bytes: Uint8Array, refuseNul = true): Result<string, string> {
  if (refuseNul) {
    const nul = bytes.indexOf(0);
    if (nul >= 0) return err(`a NUL byte at byte ${nul}: not a text file`);
  }
  try {
    return ok(new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    return err(`not valid UTF-8 at byte ${firstInvalidUtf8(bytes)}`);
  }
}

/** The offset of the first byte that does not begin or continue a well-formed UTF-8 sequence (RFC 3629 section 4). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k < len; k++) {
      const d = b[i + k];
      if (d === undefined) return i;
      const [l, h] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (d < l || d > h) return i;
    }
    i += len;
  }
  return b.length;
}
