import { chmodSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { atomicWriteFile, atomicWriteJson, cleanupStaleTemps } from '../../src/fs/atomic-write.js';
import { CrossDeviceError, DiskFullError, FsIoError, FsPermissionError } from '../../src/fs/errors.js';
import { faultyFs } from '../../src/fs/fault-injection.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();

describe('atomicWriteFile', () => {
  it('writes new content, replaces old content, and fsyncs file then directory', async () => {
    const dir = tempDir();
    const p = join(dir, 'a.txt');
    const fs = faultyFs();
    await atomicWriteFile(p, 'first', { fs });
    await atomicWriteFile(p, new Uint8Array([104, 105]), { fs });
    expect(readFileSync(p, 'utf8')).toBe('hi');
    expect(fs.calls.get('datasync')).toBe(2);
    expect(fs.calls.get('syncDir')).toBe(2);
    expect(readdirSync(dir)).toEqual(['a.txt']);
  });

  it('durability "data" skips the directory fsync and uses fdatasync', async () => {
    const dir = tempDir();
    const fs = faultyFs();
    await atomicWriteFile(join(dir, 'd'), 'x', { fs, durability: 'data' });
    expect(fs.calls.get('datasync')).toBe(1);
    expect(fs.calls.get('syncDir')).toBeUndefined();
  });

  it('writes empty content as an empty file (the seed refused it)', async () => {
    const dir = tempDir();
    const p = join(dir, 'empty');
    writeFileSync(p, 'old');
    await atomicWriteFile(p, '');
    expect(statSync(p).size).toBe(0);
  });

  it('keeps the existing mode', async () => {
    const dir = tempDir();
    const p = join(dir, 'm');
    writeFileSync(p, 'x');
    chmodSync(p, 0o640);
    await atomicWriteFile(p, 'y');
    expect(statSync(p).mode & 0o777).toBe(0o640);
    await atomicWriteFile(join(dir, 'n'), 'y', { mode: 0o600 });
    expect(statSync(join(dir, 'n')).mode & 0o777).toBe(0o600);
  });

  it('loops over short writes so every byte lands', async () => {
    const dir = tempDir();
    const p = join(dir, 'short');
    const data = Buffer.alloc(10_000, 7);
    const fs = faultyFs([{ call: 'write', shortWrite: 333 }]);
    await atomicWriteFile(p, data, { fs });
    expect(readFileSync(p).equals(data)).toBe(true);
    expect(fs.calls.get('write')).toBe(Math.ceil(10_000 / 333));
  });

  it('streams an async iterable', async () => {
    const dir = tempDir();
    const p = join(dir, 's');
    async function* gen() {
      yield 'ab';
      yield Buffer.from('cd');
    }
    await atomicWriteFile(p, gen());
    expect(readFileSync(p, 'utf8')).toBe('abcd');
  });

  it('applies concurrent writes to one path in call order', async () => {
    const dir = tempDir();
    const p = join(dir, 'order');
    await Promise.all(Array.from({ length: 20 }, (_, i) => atomicWriteFile(p, String(i))));
    expect(readFileSync(p, 'utf8')).toBe('19');
  });

  it('replaces the real file behind a symlink', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'real'), 'old');
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    await atomicWriteFile(join(dir, 'link'), 'new');
    expect(readFileSync(join(dir, 'real'), 'utf8')).toBe('new');
    expect(statSync(join(dir, 'link')).isFile()).toBe(true);
  });

  it("with followSymlinks: false replaces the link itself with a file of the default mode, not the link's 0777", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'secret'), 'old', { mode: 0o600 });
    symlinkSync(join(dir, 'secret'), join(dir, 'link'));
    await atomicWriteFile(join(dir, 'link'), 'new', { followSymlinks: false });
    expect(readFileSync(join(dir, 'secret'), 'utf8')).toBe('old');
    const st = statSync(join(dir, 'link'));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o666 & ~process.umask());
  });

  const faults = [
    {
      name: 'ENOSPC while writing',
      rule: { call: 'write', errno: 'ENOSPC' },
      cls: DiskFullError,
      code: 'E_FS_DISK_FULL',
    },
    {
      name: 'EACCES creating the temp file',
      rule: { call: 'open', errno: 'EACCES' },
      cls: FsPermissionError,
      code: 'E_FS_PERMISSION',
    },
    {
      name: 'EXDEV on rename',
      rule: { call: 'rename', errno: 'EXDEV' },
      cls: CrossDeviceError,
      code: 'E_FS_CROSS_DEVICE',
    },
    { name: 'EIO from fsync', rule: { call: 'datasync', errno: 'EIO' }, cls: FsIoError, code: 'E_FS_IO' },
    { name: 'EIO reported at close', rule: { call: 'close', errno: 'EIO' }, cls: FsIoError, code: 'E_FS_IO' },
  ] as const;
  for (const f of faults) {
    it(`${f.name}: clear typed error, target untouched, no temp left`, async () => {
      const dir = tempDir();
      const p = join(dir, 't');
      writeFileSync(p, 'old');
      const fs = faultyFs([{ ...f.rule }]);
      const err = await atomicWriteFile(p, 'new content', { fs }).catch((e) => e);
      expect(err).toBeInstanceOf(f.cls);
      expect(err.code).toBe(f.code);
      expect(err.path).toBe(p);
      expect(err.message).toContain(f.rule.errno);
      expect(err.cause.code).toBe(f.rule.errno);
      expect(readFileSync(p, 'utf8')).toBe('old');
      expect(readdirSync(dir)).toEqual(['t']);
    });
  }

  it('a directory fsync failing after the rename says the outcome is unknown', async () => {
    const dir = tempDir();
    const p = join(dir, 't');
    writeFileSync(p, 'old');
    const fs = faultyFs([{ call: 'syncDir', errno: 'EIO' }]);
    const err = await atomicWriteFile(p, 'new', { fs }).catch((e) => e);
    expect(err).toBeInstanceOf(FsIoError);
    expect(err.step).toBe('fsync directory');
    expect(err.detail).toMatch(/outcome as unknown/);
    expect(readFileSync(p, 'utf8')).toBe('new'); // renamed, not known to be durable
    expect(readdirSync(dir)).toEqual(['t']);
  });

  it('a failing fsync is never retried', async () => {
    const dir = tempDir();
    const fs = faultyFs([{ call: 'datasync', errno: 'EIO' }]);
    await expect(atomicWriteFile(join(dir, 'x'), 'y', { fs })).rejects.toThrow(/fsync/);
    expect(fs.calls.get('datasync')).toBe(1);
    expect(fs.calls.get('rename')).toBeUndefined();
  });

  it('rejects bad arguments with what is allowed', async () => {
    await expect(atomicWriteFile('', 'x')).rejects.toThrow(/non-empty string/);
    await expect(atomicWriteFile('/tmp/x', 'x', { durability: 'fast' as never })).rejects.toThrow(
      /full, data, none/,
    );
    await expect(atomicWriteFile('/tmp/x', 'x', { mode: -1 })).rejects.toThrow(/0o7777/);
  });

  it('an aborted signal leaves the target untouched', async () => {
    const dir = tempDir();
    const p = join(dir, 'ab');
    writeFileSync(p, 'old');
    const ac = new AbortController();
    const pr = atomicWriteFile(p, 'new', { signal: ac.signal, onTempCreated: () => ac.abort() });
    await expect(pr).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(readFileSync(p, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['ab']);
  });

  it('atomicWriteJson and cleanupStaleTemps', async () => {
    const dir = tempDir();
    await atomicWriteJson(join(dir, 'c.json'), { a: 'ü' });
    expect(JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8'))).toEqual({ a: 'ü' });
    writeFileSync(join(dir, '.c.json.999999999.0.0123456789ab.tmp'), 'junk'); // dead pid
    writeFileSync(join(dir, 'other.tmp'), 'not ours');
    expect(await cleanupStaleTemps(dir, { olderThanMs: 0 })).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['c.json', 'other.tmp']);
  });

  it('simulated win32: a busy rename (EPERM) is retried within the budget, and no directory fsync is attempted', async () => {
    const dir = tempDir();
    const p = join(dir, 'w');
    writeFileSync(p, 'old');
    const fs = faultyFs([{ call: 'rename', errno: 'EPERM', times: 2 }]);
    await atomicWriteFile(p, 'new', { fs, platform: 'win32' });
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(fs.calls.get('rename')).toBe(3);
    expect(fs.calls.get('syncDir')).toBeUndefined();
    const stuck = faultyFs([{ call: 'rename', errno: 'EBUSY' }]);
    const err = await atomicWriteFile(p, 'newer', { fs: stuck, platform: 'win32', renameRetryMs: 40 }).catch(
      (e) => e,
    );
    expect(err.code).toBe('E_FS');
    expect(err.retryable).toBe(true);
    expect(stuck.calls.get('rename')).toBeGreaterThan(1);
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['w']);
    const posix = faultyFs([{ call: 'rename', errno: 'EPERM', times: 1 }]);
    await expect(atomicWriteFile(p, 'x', { fs: posix, platform: 'linux' })).rejects.toBeInstanceOf(
      FsPermissionError,
    );
    expect(posix.calls.get('rename')).toBe(1);
  });
});
