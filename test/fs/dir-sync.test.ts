import { describe, expect, it } from 'vitest';
import { holdDir, syncDirShared } from '../../src/fs/dir-sync.js';
import { type FsAdapter, type FsDir, nodeFs } from '../../src/fs/fs-adapter.js';

/** An adapter whose directory fsyncs complete only when the test says so. */
function manualSync() {
  const calls: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const fs: FsAdapter = {
    ...nodeFs,
    syncDir: () =>
      new Promise<void>((resolve, reject) => {
        calls.push({ resolve, reject });
      }),
  };
  return { fs, calls };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('syncDirShared (group commit for directory fsync)', () => {
  it('callers join the next fsync that starts after them, never the running one', async () => {
    const { fs, calls } = manualSync();
    const done: number[] = [];
    const p1 = syncDirShared(fs, '/d').then(() => done.push(1));
    const p2 = syncDirShared(fs, '/d').then(() => done.push(2));
    const p3 = syncDirShared(fs, '/d').then(() => done.push(3));
    await tick();
    expect(calls).toHaveLength(1); // 2 and 3 wait for the running fsync to end, then share one
    calls[0]!.resolve();
    await tick();
    expect(done).toEqual([1]);
    expect(calls).toHaveLength(2);
    const p4 = syncDirShared(fs, '/d').then(() => done.push(4)); // arrives while #2 runs
    calls[1]!.resolve();
    await tick();
    expect(done).toEqual([1, 2, 3]);
    expect(calls).toHaveLength(3);
    calls[2]!.resolve();
    await Promise.all([p1, p2, p3, p4]);
    expect(done).toEqual([1, 2, 3, 4]);
  });

  it('a failed fsync fails everyone who shared it; other directories are independent', async () => {
    const { fs, calls } = manualSync();
    const a = syncDirShared(fs, '/a');
    const b = syncDirShared(fs, '/b');
    await tick();
    expect(calls).toHaveLength(2);
    calls[0]!.reject(new Error('EIO'));
    calls[1]!.resolve();
    await expect(a).rejects.toThrow('EIO');
    await expect(b).resolves.toBeUndefined();
  });

  it('holders share one directory opened ahead; it is closed when the last one lets go', async () => {
    const log: string[] = [];
    let failNext = false;
    const fs: FsAdapter = {
      ...nodeFs,
      syncDir: async () => {
        log.push('syncDir');
      },
      openDir: async (): Promise<FsDir> => {
        const n = log.filter((l) => l.startsWith('open')).length + 1;
        log.push(`open ${n}`);
        return {
          sync: async () => {
            log.push(`sync ${n}`);
            if (failNext) {
              failNext = false;
              throw new Error('EIO');
            }
          },
          close: async () => {
            log.push(`close ${n}`);
          },
        };
      },
    };
    const releaseA = holdDir(fs, '/d');
    const releaseB = holdDir(fs, '/d');
    await syncDirShared(fs, '/d');
    await syncDirShared(fs, '/d');
    releaseA();
    await tick();
    expect(log).toEqual(['open 1', 'sync 1', 'sync 1']); // still held by B
    failNext = true;
    await expect(syncDirShared(fs, '/d')).rejects.toThrow('EIO');
    await tick();
    expect(log.slice(3)).toEqual(['sync 1', 'close 1']); // not trusted after a failed fsync
    await syncDirShared(fs, '/d'); // B still holds: falls back to a fresh syncDir
    releaseB();
    releaseB(); // a second release is ignored
    expect(log.slice(5)).toEqual(['syncDir']);
    const releaseC = holdDir(fs, '/d'); // a new holder opens again
    await syncDirShared(fs, '/d');
    releaseC();
    await tick();
    expect(log.slice(6)).toEqual(['open 2', 'sync 2', 'close 2']);
  });
});
