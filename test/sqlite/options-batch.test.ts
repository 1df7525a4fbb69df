import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchError, sqlite } from '../../src/sql/sqlite/index.js';
import { deferred, openDb, tempDir } from './helpers.js';

describe('sqlite() options', () => {
  it('rejects invalid pragma values and unknown options with a message that says what is allowed', () => {
    const filename = join(tempDir(), 'x.db');
    const cases: [object, RegExp][] = [
      [{ synchronous: 'bogus' }, /synchronous must be one of 'off', 'normal', 'full', 'extra'/],
      [{ journalMode: 'WAL2' }, /journalMode must be one of 'wal', 'delete'/],
      [{ journalMode: 'off' }, /can corrupt.*unsafe: true/],
      [{ synchronous: 'off' }, /can corrupt.*unsafe: true/],
      [{ busyTimeoutMs: -1 }, /busyTimeoutMs must be an integer/],
      [{ cacheSizeKiB: 1.5 }, /cacheSizeKiB must be an integer/],
      [{ readers: 2, journalMode: 'delete' }, /readers need a database file in WAL mode/],
      [{ defaultBeginMode: 'later' }, /defaultBeginMode must be one of 'deferred', 'immediate', 'exclusive'/],
      [{ foreignKeys: 'yes' }, /foreignKeys must be true or false/],
      [{ synchronus: 'full' }, /unknown sqlite option 'synchronus'/],
      [{ maxNestingDepth: 0 }, /maxNestingDepth must be a positive integer/],
    ];
    for (const [opts, message] of cases) {
      expect(() => sqlite({ filename, ...opts } as never), JSON.stringify(opts)).toThrow(message);
    }
    expect(() => sqlite({ filename: '' })).toThrow(/filename/);
    expect(() => sqlite({ filename: ':memory:', journalMode: 'wal' })).toThrow(
      /in-memory database cannot use WAL/,
    );
  });

  it('applies pragmas at open and reads them back', async () => {
    const db = openDb({ synchronous: 'normal', journalMode: 'delete', busyTimeoutMs: 2000, busyWaitMs: 7 });
    expect(db.effective).toEqual({
      journalMode: 'delete',
      synchronous: 1,
      foreignKeys: true,
      busyTimeout: 7,
    });
    expect(await db.query('PRAGMA synchronous')).toEqual([{ synchronous: 1 }]);
  });

  it('validates per-transaction options', async () => {
    const db = openDb();
    await expect(db.transaction(async () => {}, { beginMode: 'eventually' })).rejects.toThrow(
      /beginMode must be one of 'deferred', 'immediate', 'exclusive'/,
    );
    await expect(db.transaction(async () => {}, { timeoutMs: 0 })).rejects.toMatchObject({
      code: 'E_INVALID_OPTION',
    });
  });
});

describe('read-only connections (WAL)', () => {
  it('serve read-only transactions from a snapshot while the writer commits, neither waiting for the other', async () => {
    const db = openDb({ readers: 1 });
    await db.execute('CREATE TABLE t (v INTEGER)');
    await db.execute('INSERT INTO t VALUES (1)');
    const readStarted = deferred();
    const writerDone = deferred();
    const reader = db.transaction(
      async (tx) => {
        const before = await tx.query('SELECT sum(v) AS s FROM t');
        readStarted.resolve();
        await writerDone.promise;
        const after = await tx.query('SELECT sum(v) AS s FROM t');
        return [before, after];
      },
      { readOnly: true },
    );
    await readStarted.promise;
    await db.transaction((tx) => tx.execute('INSERT INTO t VALUES (10)'));
    writerDone.resolve();
    expect(await reader).toEqual([[{ s: 1 }], [{ s: 1 }]]); // one consistent snapshot
    expect(await db.query('SELECT sum(v) AS s FROM t')).toEqual([{ s: 11 }]);
  });
});

describe('db.batch', () => {
  async function setup() {
    const db = openDb();
    await db.execute('CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty > 0))');
    // every 10th row violates the CHECK
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, qty: (i + 1) % 10 === 0 ? 0 : 1 }));
    return { db, rows };
  }

  it("'skipRow' commits the good rows of a chunk and reports the failing ones", async () => {
    const { db, rows } = await setup();
    const progress: number[] = [];
    const r = await db.batch(rows, {
      statement: 'INSERT INTO items (id, qty) VALUES (:id, :qty)',
      chunkSize: 50,
      mode: 'skipRow',
      onChunkCommitted: (n) => progress.push(n),
    });
    expect(r.committed).toBe(45);
    expect(r.failed.map((f) => f.index)).toEqual([9, 19, 29, 39, 49]);
    expect(progress).toEqual([45]);
    expect(await db.query('SELECT count(*) AS n FROM items')).toEqual([{ n: 45 }]);
  });

  it("'abort' rolls back the failing chunk, keeps earlier chunks and says where to resume", async () => {
    const { db, rows } = await setup();
    const err = await db
      .batch(rows, { statement: 'INSERT INTO items (id, qty) VALUES (:id, :qty)', chunkSize: 5 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchError);
    expect((err as BatchError).resumeAt).toBe(5);
    expect((err as BatchError).result.committed).toBe(5);
    expect(await db.query('SELECT count(*) AS n FROM items')).toEqual([{ n: 5 }]);
  });

  it('rejects bad batch options', async () => {
    const { db, rows } = await setup();
    await expect(
      db.batch(rows, { statement: 'INSERT INTO items VALUES (?, ?)', chunkSize: 0 }),
    ).rejects.toThrow(/chunkSize must be a positive integer/);
    await expect(db.batch(rows, { statement: 'x', mode: 'skip' as never })).rejects.toThrow(
      /'abort' or 'skipRow'/,
    );
  });
});
