/**
 * A power-loss simulator for tests: an {@link FsAdapter} over a real directory tree that
 * remembers what is *durable* — a file's content as of its last fsync/fdatasync, and a
 * directory's entries as of its last directory fsync — and `powerLoss()` rewinds the tree
 * to exactly that. Everything not synced is lost: a file created but never fsynced comes
 * back empty (as with delayed allocation), a rename or unlink whose directory was never
 * fsynced is undone. This is the worst case POSIX allows, not what a given filesystem does.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FsAdapter, FsFile } from './fs-adapter.js';
import { nodeFs, openDirOf } from './fs-adapter.js';

interface Entry {
  ino: number;
  dir: boolean;
}

export interface PowerLossFs extends FsAdapter {
  /** Rewinds the tree to its durable state (then that is the new starting point). */
  powerLoss(): void;
}

function listing(dir: string): Map<string, Entry> {
  const m = new Map<string, Entry>();
  for (const name of readdirSync(dir)) {
    const st = statSync(join(dir, name));
    m.set(name, { ino: st.ino, dir: st.isDirectory() });
  }
  return m;
}

/** Wraps `base` for the tree under `root`; the tree as it is now counts as durable. */
export function powerLossFs(root: string, base: FsAdapter = nodeFs): PowerLossFs {
  const top = resolve(root);
  const content = new Map<number, Buffer>();
  const dirs = new Map<string, Map<string, Entry>>();

  const snapshotAll = () => {
    content.clear();
    dirs.clear();
    const walk = (d: string) => {
      const l = listing(d);
      dirs.set(d, l);
      for (const [name, e] of l) {
        if (e.dir) walk(join(d, name));
        else content.set(e.ino, readFileSync(join(d, name)));
      }
    };
    walk(top);
  };
  snapshotAll();

  const wrap = (f: FsFile): FsFile => {
    const capture = async () => {
      const st = await f.stat();
      const buf = Buffer.alloc(st.size);
      let off = 0;
      while (off < st.size) {
        const n = await f.read(buf, off, st.size - off, off);
        if (n === 0) break;
        off += n;
      }
      content.set(st.ino, buf.subarray(0, off));
    };
    return {
      ...f,
      write: (b, o, l, p) => f.write(b, o, l, p),
      writev: (b, p) => f.writev(b, p),
      read: (b, o, l, p) => f.read(b, o, l, p),
      truncate: (n) => f.truncate(n),
      stat: () => f.stat(),
      chmod: (m) => f.chmod(m),
      chown: (u, g) => f.chown(u, g),
      close: () => f.close(),
      async sync() {
        await f.sync();
        await capture();
      },
      async datasync() {
        await f.datasync();
        await capture();
      },
    };
  };

  return {
    ...base,
    async open(path, flags, mode) {
      // Read access is needed to capture content at fsync time.
      const readable = flags === 'w' || flags === 'wx' || flags === 'a' ? `${flags}+` : flags;
      const f = await base.open(path, readable, mode);
      if (flags.includes('x')) content.delete((await f.stat()).ino); // a new inode: nothing durable yet
      return wrap(f);
    },
    async syncDir(path) {
      await base.syncDir(path);
      dirs.set(resolve(path), listing(resolve(path)));
    },
    async openDir(path) {
      const dir = await openDirOf(base, path);
      return {
        async sync() {
          await dir.sync();
          dirs.set(resolve(path), listing(resolve(path)));
        },
        close: () => dir.close(),
      };
    },
    powerLoss() {
      const rebuild = (d: string) => {
        const durable = dirs.get(d) ?? new Map<string, Entry>();
        for (const name of readdirSync(d)) {
          if (!durable.has(name)) rmSync(join(d, name), { recursive: true, force: true });
        }
        for (const [name, e] of durable) {
          const p = join(d, name);
          if (e.dir) {
            mkdirSync(p, { recursive: true });
            rebuild(p);
          } else {
            rmSync(p, { recursive: true, force: true });
            writeFileSync(p, content.get(e.ino) ?? Buffer.alloc(0));
          }
        }
      };
      rebuild(top);
      snapshotAll();
    },
  };
}
