/**
 * Atomic writes: write to a temporary sibling, fsync it, rename over the target, fsync the directory.
 * A crash at any point leaves either the old file or the new one, never a torn one.
 */
import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { dirname, basename, join, sep } from 'node:path';

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSynced(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    // A failed write or rename (disk full, target is a directory) leaves no temporary file behind.
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/**
 * Replace a whole directory atomically, with no moment at which `dir` is missing: `fill` writes a fresh
 * version into `.<name>.versions/`, and `dir` is a symbolic link that is swapped to the new version by one
 * rename(2) of a new link over it. A reader that opens `dir/x` gets the old version or the new one, never
 * "no such file"; a reader that needs several files from one version resolves the link once (see
 * `resolveDirVersion`). The version replaced is kept until the next write, so a reader that resolved it just
 * before the swap can finish; older ones are removed (a reader slower than two writes retries, as
 * `readBundle` does). The directory thus takes up to twice its size on disk.
 * A crash before the swap leaves the previous version in place; leftovers of crashed writers are removed by
 * the next write. A plain directory from before this layout is migrated on its first rewrite: it is moved
 * aside and the link put in its place (two renames, the one time the path is briefly absent).
 * Copy such a directory with `cp -rL` (follow the link).
 */
export function writeDirAtomic(dir: string, fill: (tmpDir: string) => void): void {
  const parent = dirname(dir);
  const name = basename(dir);
  // Without a trailing slash ('out/' is common on command lines): rename(2) onto 'out/' fails for a link.
  dir = join(parent, name);
  const storeName = versionStoreName(name);
  const store = join(parent, storeName);
  mkdirSync(store, { recursive: true });
  const stamp = `${Date.now().toString(36)}-${process.pid}-${(seq++).toString(36)}`;
  const tmp = join(store, `tmp-${stamp}`);
  const version = `v-${stamp}`;
  const link = join(parent, `.${name}.${stamp}.link`);
  mkdirSync(tmp);
  let swapped = false;
  let previous: string | null = null;
  try {
    fill(tmp);
    fsyncDir(tmp);
    renameSync(tmp, join(store, version));
    fsyncDir(store);
    symlinkSync(join(storeName, version), link);
    if (isPlainDir(dir)) {
      previous = `legacy-${stamp}`;
      renameSync(dir, join(store, previous));
    } else previous = currentVersion(dir, storeName);
    renameSync(link, dir);
    swapped = true;
    fsyncDir(parent);
  } catch (e) {
    if (!swapped) {
      // A plain directory already moved aside goes back where it was.
      if (previous?.startsWith('legacy-') && !existsSync(dir)) renameSync(join(store, previous), dir);
      rmSync(tmp, { recursive: true, force: true });
      rmSync(join(store, version), { recursive: true, force: true });
      rmSync(link, { force: true });
    }
    throw e;
  }
  pruneVersions(store, new Set([version, previous]));
  pruneLinks(parent, name);
}

/** Removes the temporary links (`.<name>.<stamp>.link`) of writers of `name` that crashed before their swap. */
function pruneLinks(parent: string, name: string): void {
  const prefix = `.${name}.`;
  for (const e of readdirSync(parent)) {
    const stamp = e.startsWith(prefix) && e.endsWith('.link') ? e.slice(prefix.length, -'.link'.length) : '';
    if (!/^[0-9a-z]+-\d+-[0-9a-z]+$/.test(stamp)) continue; // only names writeDirAtomic makes
    const pid = Number(stamp.split('-')[1]);
    if (pid === process.pid || isRunning(pid)) continue; // another write in progress
    rmSync(join(parent, e), { force: true });
  }
}

/** The version `dir` links to when it is a link into its version store, else null. */
function currentVersion(dir: string, storeName: string): string | null {
  try {
    const target = readlinkSync(dir);
    const [head, name, ...rest] = target.split(sep);
    return head === storeName && name && !rest.length ? name : null;
  } catch {
    return null;
  }
}

/** The hidden sibling that holds the versions of `name`. */
export const versionStoreName = (name: string) => `.${name}.versions`;

/**
 * The real directory behind `dir` right now (one version of a `writeDirAtomic` directory, or `dir` itself
 * when it is a plain directory): read every file of one version through it.
 */
export function resolveDirVersion(dir: string): string {
  return realpathSync(dir);
}

let seq = 0;

function isPlainDir(p: string): boolean {
  try {
    const st = lstatSync(p);
    return st.isDirectory() && !st.isSymbolicLink();
  } catch {
    return false;
  }
}

/** Removes every version but those in `keep`, and the temporary directories of writers that no longer run. */
function pruneVersions(store: string, keep: Set<string | null>): void {
  const entries = readdirSync(store);
  // The newest version of another running writer may be renamed into place but not yet linked: removing it
  // would leave that writer's link dangling (the directory missing). Its older versions go as usual.
  const newest = new Map<number, [number, number, string]>();
  for (const e of entries) {
    const m = /^v-([0-9a-z]+)-(\d+)-([0-9a-z]+)$/.exec(e);
    const pid = m ? Number(m[2]) : process.pid;
    if (!m || pid === process.pid) continue;
    const t = parseInt(m[1], 36);
    const q = parseInt(m[3], 36);
    const cur = newest.get(pid);
    if (!cur || t > cur[0] || (t === cur[0] && q > cur[1])) newest.set(pid, [t, q, e]);
  }
  keep = new Set(keep);
  for (const [pid, [, , e]] of newest) if (isRunning(pid)) keep.add(e);
  for (const e of entries) {
    if (keep.has(e)) continue;
    if (e.startsWith('tmp-')) {
      const pid = Number(e.split('-')[2]);
      if (pid === process.pid || isRunning(pid)) continue; // another write in progress
    }
    rmSync(join(store, e), { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes a file without the rename dance, but fsynced: for use inside `writeDirAtomic`. */
export function writeFileSynced(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync a directory so a rename inside it is durable; a no-op where the file system refuses. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems do not allow fsync on directories; the rename is still atomic.
  }
}
