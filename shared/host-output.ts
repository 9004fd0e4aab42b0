/**
 * Checking where a command will write before it does anything: an output file (an audit log,
 * a trace, a report, a request log, a snapshot) and an output folder (keygen's, plugin new's).
 *
 * Invariant: a path that cannot be written is found here, as a message naming it and the
 * problem, before a machine starts; nothing here throws or loops. Folders are created one
 * component at a time, never with `mkdir -p` semantics from Node (`mkdirSync(..., {recursive:
 * true})` loops forever under /proc, where mkdir fails with ENOENT on a parent that exists).
 */
import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { err, ok, type Result } from './result.ts';
import { quoteForMessage } from './message-text.ts';
import { systemReason } from './host-file.ts';

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Creates the folder `dir` and any missing parents (like `mkdir -p`), or says why it cannot:
 * a component that is not a folder, a parent that refuses new entries (procfs, sysfs, a
 * read-only mount, no permission). Bounded by the number of path components.
 */
export function makeOutputDir(dir: string): Result<void, string> {
  const abs = resolve(dir);
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    const st = statOrUndefined(cur);
    if (st !== undefined) {
      if (!st.isDirectory()) return err(`${quoteForMessage(cur)}: exists and is not a folder`);
      break;
    }
    missing.push(cur);
    const parent = dirname(cur);
    if (parent === cur) break;
    cur = parent;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statOrUndefined(d)?.isDirectory()) continue;
      // ENOENT with the parent present: the parent folder takes no new entries (procfs, sysfs).
      if (code === 'ENOENT' && statOrUndefined(dirname(d))?.isDirectory()) {
        return err(
          `${quoteForMessage(abs)}: cannot create the folder ${quoteForMessage(d)}: ${quoteForMessage(dirname(d))} accepts no new folders (a kernel pseudo-filesystem?)`,
        );
      }
      return err(`${quoteForMessage(abs)}: cannot create the folder ${quoteForMessage(d)}: ${systemReason(e)}`);
    }
  }
  return ok(undefined);
}

/**
 * Whether the file `path` can be written (created or replaced) without creating it: its folder
 * exists and is writable, and the path is not a folder, a device or a FIFO (a trace written to
 * a FIFO with no reader would block the run's end forever). Returns whether it exists.
 */
export function checkOutputFile(path: string): Result<{ exists: boolean }, string> {
  const st = statOrUndefined(path);
  if (st !== undefined) {
    if (st.isDirectory()) return err('is a folder; name a file');
    if (!st.isFile()) return err('exists and is not a regular file');
    try {
      accessSync(path, constants.W_OK);
    } catch (e) {
      return err(`cannot write: ${systemReason(e)}`);
    }
    return ok({ exists: true });
  }
  const dir = dirname(path);
  const ds = statOrUndefined(dir);
  if (ds === undefined) return err(`the folder ${quoteForMessage(dir)} does not exist`);
  if (!ds.isDirectory()) return err(`${quoteForMessage(dir)} is not a folder`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    return err(`cannot create a file in ${quoteForMessage(dir)}: ${systemReason(e)}`);
  }
  // procfs and sysfs pass access(W_OK) on their folders as root but create nothing.
  if (isPseudoFs(dir)) return err(`${quoteForMessage(dir)} is a kernel pseudo-filesystem; files cannot be created there`);
  return ok({ exists: false });
}

/** {@link checkOutputFile} for the file a flag names; the error reads `--out <path>: cannot write: <problem>`. */
export function checkOutputFlag(flag: string, path: string): Result<void, string> {
  const c = checkOutputFile(path);
  return c.ok ? ok(undefined) : err(`${flag} ${quoteForMessage(path)}: cannot write: ${c.error}`);
}

/** /proc and /sys: kernel pseudo-filesystems where no ordinary file can be created. */
function isPseudoFs(dir: string): boolean {
  const abs = resolve(dir);
  return ['/proc', '/sys'].some((p) => abs === p || abs.startsWith(`${p}/`));
}

/** One output a command was asked to write: the flag and its (absolute) path. */
export interface NamedOutput {
  readonly flag: string;
  readonly path: string;
}

/**
 * Refuses two outputs naming the same file (after resolving the path; an existing file is
 * also compared by device and inode, so a hard link or a symlink to it counts as the same):
 * each would overwrite the other.
 */
export function distinctOutputs(outputs: readonly NamedOutput[]): Result<void, string> {
  const seen: { o: NamedOutput; id: string }[] = [];
  for (const o of outputs) {
    const st = statOrUndefined(o.path);
    const id = st !== undefined ? `${st.dev}:${st.ino}` : `path:${resolve(o.path)}`;
    const same = seen.find((s) => s.id === id);
    if (same !== undefined) return err(`${same.o.flag} and ${o.flag} name the same file ${quoteForMessage(o.path)}; each would overwrite the other`);
    seen.push({ o, id });
  }
  return ok(undefined);
}
