/**
 * Directory fsync with group commit: concurrent renames in one directory share a single
 * directory fsync. A caller may only join an fsync that *starts after* its own rename, so
 * each caller joins the next queued fsync (behind the one in flight), never the running one.
 */
import type { FsAdapter } from './fs-adapter.js';

interface DirState {
  running: Promise<void> | undefined;
  next: Promise<void> | undefined;
}

const states = new WeakMap<FsAdapter, Map<string, DirState>>();

/** Resolves once a directory fsync that began after this call has completed. */
export function syncDirShared(fs: FsAdapter, dir: string): Promise<void> {
  let byDir = states.get(fs);
  if (!byDir) {
    byDir = new Map();
    states.set(fs, byDir);
  }
  let s = byDir.get(dir);
  if (!s) {
    s = { running: undefined, next: undefined };
    byDir.set(dir, s);
  }
  const st = s;
  const start = (): Promise<void> => {
    const p = fs.syncDir(dir).finally(() => {
      if (st.running === p) st.running = undefined;
      if (!st.running && !st.next) byDir.delete(dir);
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
