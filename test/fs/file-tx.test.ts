import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crashingFs, SimulatedCrash } from '../../src/fs/fault-injection.js';
import { FsTxConflictError, fsTransaction } from '../../src/fs/file-tx/index.js';
import type { FileTx } from '../../src/fs/file-tx/transaction.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();

/** Every regular file under `root` (except the journal dir) with its content. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== '.fstx') walk(p);
      } else out[relative(root, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(root);
  return out;
}

function seed(root: string, files: Record<string, string>) {
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), c);
  }
}

/** Journal dir holds nothing but the root lock after a clean end. */
function leftovers(root: string): string[] {
  return existsSync(join(root, '.fstx'))
    ? readdirSync(join(root, '.fstx')).filter((n) => n !== 'ROOT.lock')
    : [];
}

const fiveOps = async (t: FileTx) => {
  await t.write('a.txt', 'A2');
  await t.create('new/d.txt', 'D');
  await t.delete('b.txt');
  await t.rename('c.txt', 'moved/c.txt');
  await t.rename('a.txt', 'c.txt'); // c.txt now holds A2, a.txt gone
};
const pre = { 'a.txt': 'A1', 'b.txt': 'B1', 'c.txt': 'C1' };
const post = { 'c.txt': 'A2', 'new/d.txt': 'D', 'moved/c.txt': 'C1' };

describe('fsTransaction', () => {
  it('commits writes, creates, deletes and renames as one unit and leaves nothing behind', async () => {
    const root = tempDir();
    seed(root, pre);
    await fsTransaction(root).transaction(fiveOps);
    expect(snapshot(root)).toEqual(post);
    expect(leftovers(root)).toEqual([]);
  });

  it('changes nothing when the function throws, and rethrows', async () => {
    const root = tempDir();
    seed(root, pre);
    const boom = new Error('boom');
    await expect(
      fsTransaction(root).transaction(async (t) => {
        await fiveOps(t);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(snapshot(root)).toEqual(pre);
    expect(leftovers(root)).toEqual([]);
  });

  it('reads its own writes; others see nothing until commit', async () => {
    const root = tempDir();
    seed(root, { x: 'old', y: 'Y' });
    const files = fsTransaction(root);
    const t = await files.begin();
    await t.write('x', 'new');
    await t.rename('y', 'z');
    expect((await t.read('x'))?.toString()).toBe('new');
    expect((await t.read('z'))?.toString()).toBe('Y');
    expect(await t.read('y')).toBeUndefined();
    expect(await t.exists('y')).toBe(false);
    expect(snapshot(root)).toEqual({ x: 'old', y: 'Y' });
    await t.commit();
    expect(snapshot(root)).toEqual({ x: 'new', z: 'Y' });
    await expect(t.write('q', '1')).rejects.toMatchObject({ code: 'E_TX_CLOSED' });
    await expect(t.commit()).rejects.toMatchObject({ code: 'E_TX_CLOSED' });
  });

  it('swaps two files through renames', async () => {
    const root = tempDir();
    seed(root, { a: '1', b: '2' });
    await fsTransaction(root).transaction(async (t) => {
      await t.rename('a', 'tmp');
      await t.rename('b', 'a');
      await t.rename('tmp', 'b');
    });
    expect(snapshot(root)).toEqual({ a: '2', b: '1' });
  });

  it('refuses bad operations with clear errors', async () => {
    const root = tempDir();
    seed(root, { f: 'x', 'dir/g': 'y' });
    const files = fsTransaction(root);
    const cases: [(t: FileTx) => Promise<unknown>, RegExp | string][] = [
      [(t) => t.create('f', 'x'), 'E_FS_EXISTS'],
      [(t) => t.delete('missing'), 'E_FS_NOT_FOUND'],
      [(t) => t.rename('missing', 'z'), 'E_FS_NOT_FOUND'],
      [(t) => t.rename('f', 'dir/g', { overwrite: false }), 'E_FS_EXISTS'],
      [(t) => t.write('f/inner', 'x'), 'E_FS_NOT_A_FILE'],
      [(t) => t.write('dir', 'x'), 'E_FS_NOT_A_FILE'],
      [(t) => t.write('../escape', 'x'), /stay inside the root/],
      [(t) => t.write('/abs', 'x'), /relative to the root/],
      [(t) => t.write('.fstx/x', 'x'), /journal/],
      [(t) => t.write('', 'x'), /non-empty/],
    ];
    for (const [op, expected] of cases) {
      const err = (await files.transaction(op).catch((e: unknown) => e)) as { code: string; message: string };
      if (typeof expected === 'string') expect(err.code).toBe(expected);
      else expect(err.message).toMatch(expected);
    }
    expect(snapshot(root)).toEqual({ f: 'x', 'dir/g': 'y' });
    expect(() => fsTransaction(root, { journalDir: '../x' })).toThrow(/single directory name/);
  });

  it('prepare / commitPrepared / rollbackPrepared / listPrepared (two-phase participant)', async () => {
    const root = tempDir();
    seed(root, { a: 'A', b: 'B' });
    const files = fsTransaction(root);
    const t1 = await files.begin();
    await t1.write('a', 'A-new');
    await t1.delete('b');
    await t1.prepare('order-1');
    const t2 = await files.begin();
    await t2.write('c', 'C');
    await t2.prepare('order-2');
    expect(snapshot(root)).toEqual({ a: 'A', b: 'B' });
    // A restart sees the same prepared transactions.
    const again = fsTransaction(root);
    expect((await again.listPrepared('order-')).map((p) => p.gid).sort()).toEqual(['order-1', 'order-2']);
    expect(await again.listPrepared('other')).toEqual([]);
    const err = await again.transaction((t) => t.write('a', 'x')).catch((e) => e);
    expect(err).toBeInstanceOf(FsTxConflictError);
    expect(err.retryable).toBe(true);
    await expect(
      (async () => {
        const t = await again.begin();
        try {
          await t.prepare('order-1');
        } finally {
          await t.rollback().catch(() => {});
        }
      })(),
    ).rejects.toThrow(/already prepared/);
    await again.commitPrepared('order-1');
    await again.rollbackPrepared('order-2');
    expect(snapshot(root)).toEqual({ a: 'A-new' });
    expect(await again.listPrepared()).toEqual([]);
    expect(leftovers(root)).toEqual([]);
    await expect(again.commitPrepared('order-1')).rejects.toThrow(/no prepared transaction/);
  });

  it('a crash at every filesystem call of a 5-op commit recovers to all-old or all-new', async () => {
    // Count the calls of a clean run, then crash at each of them in turn.
    const probeRoot = tempDir();
    seed(probeRoot, pre);
    const probe = crashingFs(Number.MAX_SAFE_INTEGER);
    await fsTransaction(probeRoot, { fs: probe }).transaction(fiveOps);
    const total = probe.count;
    expect(total).toBeGreaterThan(20);
    const outcomes = { old: 0, new: 0 };
    for (let n = 0; n < total; n++) {
      const root = tempDir();
      seed(root, pre);
      const fs = crashingFs(n);
      const err = await fsTransaction(root, { fs })
        .transaction(fiveOps)
        .catch((e) => e);
      expect(fs.crashed).toBe(true);
      // The last calls release the root lock, whose errors the commit ignores.
      if (err !== undefined) expect(causedByCrash(err)).toBe(true);
      rmSync(join(root, '.fstx', 'ROOT.lock'), { recursive: true, force: true }); // the dead process's lock
      await fsTransaction(root).recover();
      const state = snapshot(root);
      if (JSON.stringify(state) === JSON.stringify(snapshot0(pre))) outcomes.old++;
      else {
        expect(state).toEqual(post);
        outcomes.new++;
      }
      expect(leftovers(root)).toEqual([]);
    }
    expect(outcomes.old).toBeGreaterThan(0);
    expect(outcomes.new).toBeGreaterThan(0);
  });

  it('property: random operation sequences are all-or-nothing under a random crash point', async () => {
    const names = ['a', 'b', 'd/c', 'd/e'];
    const op = fc.oneof(
      fc.record({
        k: fc.constant('write' as const),
        p: fc.constantFrom(...names),
        v: fc.string({ maxLength: 5 }),
      }),
      fc.record({ k: fc.constant('delete' as const), p: fc.constantFrom(...names) }),
      fc.record({
        k: fc.constant('rename' as const),
        p: fc.constantFrom(...names),
        q: fc.constantFrom(...names),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), fc.nat(200), async (ops, crashAt) => {
        const run = async (t: FileTx) => {
          for (const o of ops) {
            try {
              if (o.k === 'write') await t.write(o.p, o.v);
              else if (o.k === 'delete') await t.delete(o.p);
              else await t.rename(o.p, o.q);
            } catch (e) {
              if (!(e as { code?: string }).code?.startsWith('E_FS_')) throw e; // refused op: skip it
            }
          }
        };
        const start = { a: 'A', 'd/c': 'C' };
        const refRoot = tempDir();
        seed(refRoot, start);
        await fsTransaction(refRoot).transaction(run);
        const expectedNew = snapshot(refRoot);
        const root = tempDir();
        seed(root, start);
        await fsTransaction(root, { fs: crashingFs(crashAt) })
          .transaction(run)
          .catch(() => {});
        rmSync(join(root, '.fstx', 'ROOT.lock'), { recursive: true, force: true });
        await fsTransaction(root).recover();
        const got = snapshot(root);
        expect([JSON.stringify(start), JSON.stringify(expectedNew)]).toContain(JSON.stringify(sorted(got)));
        expect(leftovers(root)).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });
});

function sorted(o: Record<string, string>) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
function snapshot0(o: Record<string, string>) {
  return sorted(o);
}

function causedByCrash(err: unknown): boolean {
  for (let e = err; e; e = (e as { cause?: unknown }).cause) if (e instanceof SimulatedCrash) return true;
  return false;
}

describe('fsTransaction after a failed apply', () => {
  it('a committed transaction whose apply failed is finished before the next one starts', async () => {
    const { faultyFs } = await import('../../src/fs/fault-injection.js');
    const root = tempDir();
    seed(root, { a: 'A1', b: 'B1' });
    // ENOSPC on the first rename after the commit point (the staged-file rename into place).
    const fs = faultyFs([{ call: 'rename', errno: 'ENOSPC', path: /-> .*\/a$/, times: 1 }]);
    const files = fsTransaction(root, { fs });
    const err = (await files
      .transaction(async (t) => {
        await t.write('a', 'A2');
        await t.write('b', 'B2');
      })
      .catch((e: unknown) => e)) as { code: string; cause: { code: string } };
    expect(err.code).toBe('E_FSTX_RECOVERY');
    expect(err.cause.code).toBe('E_FS_DISK_FULL');
    await files.transaction(async (t) => {
      expect((await t.read('a'))?.toString()).toBe('A2'); // finished, not half-applied
      await t.write('c', 'C');
    });
    expect(snapshot(root)).toEqual({ a: 'A2', b: 'B2', c: 'C' });
    expect(leftovers(root)).toEqual([]);
  });
});

describe('fsTransaction with injected faults', () => {
  it('ENOSPC or a failing fsync before the commit point: clear error, nothing changed, nothing left', async () => {
    const { faultyFs } = await import('../../src/fs/fault-injection.js');
    for (const rule of [
      { call: 'write' as const, errno: 'ENOSPC', path: '.journal' },
      { call: 'sync' as const, errno: 'EIO', path: '.journal' },
      { call: 'open' as const, errno: 'EACCES', path: '.journal' },
    ]) {
      const root = tempDir();
      seed(root, { a: 'A1' });
      const err = (await fsTransaction(root, { fs: faultyFs([rule]) })
        .transaction(async (t) => {
          await t.write('a', 'A2');
          await t.write('b', 'B');
        })
        .catch((e: unknown) => e)) as { code: string; message: string };
      expect(err.code).toBe(
        { ENOSPC: 'E_FS_DISK_FULL', EIO: 'E_FS_IO', EACCES: 'E_FS_PERMISSION' }[rule.errno],
      );
      expect(err.message).toContain(rule.errno);
      await fsTransaction(root).recover();
      expect(snapshot(root)).toEqual({ a: 'A1' });
      expect(leftovers(root)).toEqual([]);
    }
  });
});
