/**
 * Every filesystem call txkit/fs makes goes through an `FsAdapter`, so tests can inject
 * faults (ENOSPC, EACCES, a failing fsync, short writes) without root-only tricks.
 */
import type { Dirent, Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';

/** An open file. Mirrors the parts of `FileHandle` txkit uses. */
export interface FsFile {
  /** Writes up to `length` bytes; may write fewer (a short write). */
  write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<number>;
  writev(buffers: Uint8Array[], position: number | null): Promise<number>;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  sync(): Promise<void>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  stat(): Promise<Stats>;
  chmod(mode: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
  close(): Promise<void>;
}

export interface FsAdapter {
  open(path: string, flags: string, mode?: number): Promise<FsFile>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<string | undefined>;
  rm(path: string, options: { recursive?: boolean; force?: boolean }): Promise<void>;
  readdir(path: string): Promise<string[]>;
  readdirTypes(path: string): Promise<Dirent[]>;
  readFile(path: string): Promise<Buffer>;
  stat(path: string): Promise<Stats>;
  lstat(path: string): Promise<Stats>;
  realpath(path: string): Promise<string>;
  utimes(path: string, atime: Date, mtime: Date): Promise<void>;
  /** fsync a directory so creates, renames and unlinks in it are durable. No-op on win32. */
  syncDir(path: string): Promise<void>;
  /**
   * Optional: opens a directory for fsyncs to come, so the open can happen ahead of time
   * (off the critical path). `sync()` has `syncDir`'s meaning. Absent: `syncDir` is used.
   * An adapter spread from `nodeFs` that overrides `syncDir` inherits `nodeFs.openDir`,
   * which bypasses the override: override `openDir` too (see `openDirOf`), or set it undefined.
   */
  openDir?(path: string): Promise<FsDir>;
}

/** An open directory: fsync it, then close it. */
export interface FsDir {
  sync(): Promise<void>;
  close(): Promise<void>;
}

class NodeFile implements FsFile {
  constructor(private readonly fh: fsp.FileHandle) {}
  async write(buffer: Uint8Array, offset: number, length: number, position: number | null): Promise<number> {
    return (await this.fh.write(buffer, offset, length, position)).bytesWritten;
  }
  async writev(buffers: Uint8Array[], position: number | null): Promise<number> {
    return (await this.fh.writev(buffers, position ?? undefined)).bytesWritten;
  }
  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.read(buffer, offset, length, position)).bytesRead;
  }
  sync(): Promise<void> {
    return this.fh.sync();
  }
  datasync(): Promise<void> {
    return this.fh.datasync();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  stat(): Promise<Stats> {
    return this.fh.stat();
  }
  chmod(mode: number): Promise<void> {
    return this.fh.chmod(mode);
  }
  chown(uid: number, gid: number): Promise<void> {
    return this.fh.chown(uid, gid);
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/** The default adapter: `node:fs/promises`. */
export const nodeFs: FsAdapter = {
  async open(path, flags, mode) {
    return new NodeFile(await fsp.open(path, flags, mode));
  },
  rename: (a, b) => fsp.rename(a, b),
  link: (a, b) => fsp.link(a, b),
  unlink: (p) => fsp.unlink(p),
  mkdir: (p, o) => fsp.mkdir(p, o),
  rm: (p, o) => fsp.rm(p, o),
  readdir: (p) => fsp.readdir(p),
  readdirTypes: (p) => fsp.readdir(p, { withFileTypes: true }),
  readFile: (p) => fsp.readFile(p),
  stat: (p) => fsp.stat(p),
  lstat: (p) => fsp.lstat(p),
  realpath: (p) => fsp.realpath(p),
  utimes: (p, a, m) => fsp.utimes(p, a, m),
  async syncDir(path) {
    const dir = await nodeFs.openDir!(path);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  },
  async openDir(path) {
    // Windows cannot fsync a directory (EPERM): there the rename's durability is the filesystem's.
    if (process.platform === 'win32') return { sync: async () => {}, close: async () => {} };
    const fh = await fsp.open(path, 'r');
    return { sync: () => fh.sync(), close: () => fh.close() };
  },
};

/**
 * `fs.openDir(path)`, or, for an adapter without it, a directory whose `sync()` is
 * `fs.syncDir(path)`. Wrapping adapters build their `openDir` on it.
 */
export async function openDirOf(fs: FsAdapter, path: string): Promise<FsDir> {
  if (fs.openDir) return fs.openDir(path);
  return { sync: () => fs.syncDir(path), close: async () => {} };
}
