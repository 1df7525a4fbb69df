/**
 * Directory fsync with group commit: concurrent renames in one directory share a single
 * directory fsync. A caller may only join an fsync that *starts after* its own rename, so
 * each caller joins the next queued fsync (behind the one in flight), never the running one.
 *
 * A writer that knows it will need the fsync can `holdDir` first: the directory is opened
 * while it writes its data (where the adapter can open directories), and the fsyncs of all
 * holders go through that one open directory. It is closed when the last holder lets go.
 */
import type { FsAdapter, FsDir } from './fs-adapter.js';

interface DirState {
  running: Promise<void> | undefined;
  next: Promise<void> | undefined;
  holds: number;
  /** The directory opened for the holders, if the adapter can open directories. */
  opened: Promise<FsDir> | undefined;
}

const states = new WeakMap<FsAdapter, Map<string, DirState>>();

function stateOf(fs: FsAdapter, dir: string): { byDir: Map<string, DirState>; st: DirState } {
  let byDir = states.get(fs);
  if (!byDir) {
    byDir = new Map();
    states.set(fs, byDir);
  }
  let st = byDir.get(dir);
  if (!st) {
    st = { running: undefined, next: undefined, holds: 0, opened: undefined };
    byDir.set(dir, st);
  }
  return { byDir, st };
}

/** Forgets the directory once nothing runs, waits or holds it; closes what it opened. */
function settle(byDir: Map<string, DirState>, dir: string, st: DirState): void {
  if (st.running || st.next || st.holds > 0) return;
  if (byDir.get(dir) === st) byDir.delete(dir);
  closeOpened(st);
}

function closeOpened(st: DirState): void {
  const opened = st.opened;
  st.opened = undefined;
  opened?.then((d) => d.close()).catch(() => {}); // a failed open or close changes nothing now
}

/**
 * Opens `dir` now for fsyncs that will come through {@link syncDirShared}; returns the
 * release. Without `openDir` in the adapter this only keeps the shared state.
 */
export function holdDir(fs: FsAdapter, dir: string): () => void {
  const { byDir, st } = stateOf(fs, dir);
  st.holds++;
  if (!st.opened && fs.openDir) {
    st.opened = fs.openDir(dir);
    st.opened.catch(() => {}); // reported by the fsync that uses it
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    st.holds--;
    settle(byDir, dir, st);
  };
}

/** Resolves once a directory fsync that began after this call has completed. */
export function syncDirShared(fs: FsAdapter, dir: string): Promise<void> {
  const { byDir, st } = stateOf(fs, dir);
  const start = (): Promise<void> => {
    const opened = st.opened;
    const sync = opened ? opened.then((d) => d.sync()) : fs.syncDir(dir);
    const p = sync
      .catch((err: unknown) => {
        // After a failed fsync the open directory is not trusted again: the next one reopens.
        if (st.opened === opened) closeOpened(st);
        throw err;
      })
      .finally(() => {
        if (st.running === p) st.running = undefined;
        settle(byDir, dir, st);
      });
    st.running = p;
    return p;
  };
  if (!st.running) return start();
  if (!st.next) {
    const after = st.running.then(
      () => undefined,
      () => undefined,
    );
    st.next = after.then(() => {
      st.next = undefined;
      return start();
    });
  }
  return st.next;
}
