/**
 * A fault-injecting {@link FsAdapter} for tests and drills: make chosen calls fail with an
 * errno, or make writes short, without needing a full disk or a non-root user.
 */
import type { FsAdapter, FsDir, FsFile } from './fs-adapter.js';
import { nodeFs, openDirOf } from './fs-adapter.js';

/** The adapter and file calls a fault can target. */
export type FsCall =
  | 'open'
  | 'rename'
  | 'link'
  | 'unlink'
  | 'mkdir'
  | 'readdir'
  | 'readFile'
  | 'stat'
  | 'syncDir'
  | 'write'
  | 'sync'
  | 'datasync'
  | 'truncate'
  | 'close';

export interface FaultRule {
  call: FsCall;
  /** Fail with this errno, e.g. `'ENOSPC'`. */
  errno?: string;
  /** For `write`: write at most this many bytes per call (a short write) instead of failing. */
  shortWrite?: number;
  /** Only when the path matches (substring or RegExp). */
  path?: string | RegExp;
  /** Skip this many matching calls first. Default 0. */
  after?: number;
  /** Fire at most this many times. Default: forever. */
  times?: number;
}

export interface FaultyFs extends FsAdapter {
  /** How often each call was made (matching or not). */
  readonly calls: Map<FsCall, number>;
  /** Adds a rule at run time. */
  inject(rule: FaultRule): void;
  /** Removes every rule: the disk "has space again". */
  heal(): void;
}

function errnoError(errno: string, call: string, path: string): NodeJS.ErrnoException {
  const e = new Error(`${errno}: injected fault, ${call} '${path}'`) as NodeJS.ErrnoException;
  e.code = errno;
  e.syscall = call;
  e.path = path;
  return e;
}

/** Wraps `base` (default `node:fs/promises`) with injectable faults. */
export function faultyFs(rules: FaultRule[] = [], base: FsAdapter = nodeFs): FaultyFs {
  const active = rules.map((r) => ({ ...r, seen: 0, fired: 0 }));
  const calls = new Map<FsCall, number>();

  const match = (call: FsCall, path: string) => {
    calls.set(call, (calls.get(call) ?? 0) + 1);
    for (const r of active) {
      if (r.call !== call) continue;
      if (r.path !== undefined && !(typeof r.path === 'string' ? path.includes(r.path) : r.path.test(path)))
        continue;
      if (r.seen++ < (r.after ?? 0)) continue;
      if (r.times !== undefined && r.fired >= r.times) continue;
      r.fired++;
      return r;
    }
    return undefined;
  };
  const check = (call: FsCall, path: string) => {
    const r = match(call, path);
    if (r?.errno) throw errnoError(r.errno, call, path);
    return r;
  };

  const wrapFile = (f: FsFile, path: string): FsFile => ({
    async write(buf, off, len, pos) {
      const r = check('write', path);
      return f.write(buf, off, r?.shortWrite !== undefined ? Math.min(len, r.shortWrite) : len, pos);
    },
    async writev(bufs, pos) {
      const r = check('write', path);
      if (r?.shortWrite !== undefined) {
        const first = bufs[0] ?? new Uint8Array(0);
        return f.write(first, 0, Math.min(first.length, r.shortWrite), pos);
      }
      return f.writev(bufs, pos);
    },
    read: (b, o, l, p) => f.read(b, o, l, p),
    async sync() {
      check('sync', path);
      return f.sync();
    },
    async datasync() {
      check('datasync', path);
      return f.datasync();
    },
    async truncate(n) {
      check('truncate', path);
      return f.truncate(n);
    },
    stat: () => f.stat(),
    chmod: (m) => f.chmod(m),
    chown: (u, g) => f.chown(u, g),
    async close() {
      const r = match('close', path);
      await f.close();
      if (r?.errno) throw errnoError(r.errno, 'close', path);
    },
  });

  return {
    calls,
    inject(rule) {
      active.push({ ...rule, seen: 0, fired: 0 });
    },
    heal() {
      active.length = 0;
    },
    async open(p, flags, mode) {
      check('open', p);
      return wrapFile(await base.open(p, flags, mode), p);
    },
    async rename(a, b) {
      check('rename', `${a} -> ${b}`);
      return base.rename(a, b);
    },
    async link(a, b) {
      check('link', `${a} -> ${b}`);
      return base.link(a, b);
    },
    async unlink(p) {
      check('unlink', p);
      return base.unlink(p);
    },
    async mkdir(p, o) {
      check('mkdir', p);
      return base.mkdir(p, o);
    },
    rm: (p, o) => base.rm(p, o),
    async readdir(p) {
      check('readdir', p);
      return base.readdir(p);
    },
    readdirTypes: (p) => base.readdirTypes(p),
    async readFile(p) {
      check('readFile', p);
      return base.readFile(p);
    },
    async stat(p) {
      check('stat', p);
      return base.stat(p);
    },
    lstat: (p) => base.lstat(p),
    realpath: (p) => base.realpath(p),
    utimes: (p, a, m) => base.utimes(p, a, m),
    async syncDir(p) {
      check('syncDir', p);
      return base.syncDir(p);
    },
    async openDir(p) {
      const dir = await openDirOf(base, p);
      return {
        async sync() {
          check('syncDir', p);
          return dir.sync();
        },
        close: () => dir.close(),
      };
    },
  };
}

/** Thrown by {@link crashingFs} once its budget of calls is spent. */
export class SimulatedCrash extends Error {
  constructor(n: number) {
    super(`simulated crash after ${n} filesystem calls`);
    this.name = 'SimulatedCrash';
  }
}

export interface CrashingFs extends FsAdapter {
  /** Calls made so far (adapter and file calls). */
  readonly count: number;
  readonly crashed: boolean;
}

/**
 * An adapter that "dies" at call number `limit + 1`: that call and every later one throw
 * {@link SimulatedCrash} without touching the disk. What is on disk then is exactly what a
 * process killed at that point leaves (the page cache survives a process kill). Enumerating
 * `limit` from 0 visits every crash point of an operation.
 */
export function crashingFs(limit: number, base: FsAdapter = nodeFs): CrashingFs {
  let count = 0;
  let crashed = false;
  const gate = () => {
    if (crashed || ++count > limit) {
      crashed = true;
      throw new SimulatedCrash(limit);
    }
  };
  /** Every call of `methods` on an open file or directory counts too. */
  const wrapOpen = <T extends { close(): Promise<void> }>(f: T, methods: readonly (keyof T)[]): T => {
    const w = {} as T;
    for (const k of methods) {
      (w as any)[k] = async (...a: unknown[]) => {
        try {
          gate();
        } catch (err) {
          if (k === 'close') await f.close().catch(() => {}); // a dead process's fds close too
          throw err;
        }
        return (f as any)[k](...a);
      };
    }
    return w;
  };
  const FILE_CALLS = [
    'write',
    'writev',
    'read',
    'sync',
    'datasync',
    'truncate',
    'stat',
    'chmod',
    'chown',
    'close',
  ] as const;
  const adapter = {} as CrashingFs;
  for (const k of Object.keys(base) as (keyof FsAdapter)[]) {
    (adapter as any)[k] = async (...a: unknown[]) => {
      gate();
      const r = await (base as any)[k](...a);
      if (k === 'openDir') return wrapOpen(r as FsDir, ['sync', 'close']);
      return k === 'open' ? wrapOpen(r as FsFile, FILE_CALLS) : r;
    };
  }
  Object.defineProperty(adapter, 'count', { get: () => count });
  Object.defineProperty(adapter, 'crashed', { get: () => crashed });
  return adapter;
}
