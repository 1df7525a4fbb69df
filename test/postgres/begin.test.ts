/**
 * The adapter's hot path on the real server: one promise per BEGIN, statement and COMMIT
 * (pg's callback API, results mapped in the callback), and the callback-based connection
 * checkout still bounds its wait and hands a late connection back to the pool.
 */
import { createHook } from 'node:async_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PoolTimeoutError, TransactionTimeoutError } from '../../src/core/errors.js';
import type { BeginRequest } from '../../src/core/resource.js';
import { postgres } from '../../src/sql/postgres/index.js';
import { connect, createTestDatabase, PG_URL, rejection, type TestDatabase } from './helpers.js';

const request = (txId: string): BeginRequest => ({
  txId,
  readOnly: false,
  deferrable: false,
  suspended: [],
  extra: {},
});

/** Promises created while `body` runs to completion. */
async function promisesDuring(body: () => Promise<void>): Promise<number> {
  let count = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') count++;
    },
  }).enable();
  try {
    await body();
  } finally {
    hook.disable();
  }
  return count;
}

describe.skipIf(!PG_URL)('postgres begin and statement path (real server)', () => {
  let tdb: TestDatabase;

  beforeAll(async () => {
    tdb = await createTestDatabase('begin');
    const c = await connect(tdb.url);
    await c.query('CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)');
    await c.query('INSERT INTO t VALUES (1, 0), (2, 0)');
    await c.end();
  });
  afterAll(async () => {
    await tdb?.drop();
  });

  it('BEGIN, each statement and COMMIT cost one promise each, and results are mapped right', async () => {
    const db = postgres({ connectionString: tdb.url, max: 2 });
    try {
      const res = db.resource;
      // The first transaction learns the server's default isolation level (one extra query).
      const first = await res.begin(request('warm'));
      expect(first.isolation).toBe('read committed');
      await first.commit();

      const seen: unknown[] = [];
      const viaAdapter = async (): Promise<void> => {
        const tx = await res.begin(request('a'));
        seen.push(await tx.execute('UPDATE t SET v = v + 1 WHERE id = $1', [1]));
        seen.push(await tx.query('SELECT v FROM t WHERE id = $1', [1]));
        seen.push(await tx.execute('UPDATE t SET v = v + 1; UPDATE t SET v = v + 1 WHERE id = 2'));
        await tx.commit();
      };
      // The same awaits on promises made one at a time: what the adapter may cost at most.
      const oneEach = async (): Promise<void> => {
        await Promise.resolve(undefined);
        await Promise.resolve({ rowsAffected: 1 });
        await Promise.resolve([]);
        await Promise.resolve({ rowsAffected: 3 });
        await Promise.resolve(undefined);
      };
      // The hook counts every promise in the process, including the test runner's own
      // messaging: the least of a few runs is the adapter's cost.
      let adapter = Number.POSITIVE_INFINITY;
      for (let run = 0; run < 5; run++) adapter = Math.min(adapter, await promisesDuring(viaAdapter));
      const budget = await promisesDuring(oneEach);
      expect(adapter).toBe(budget);
      expect(seen.slice(0, 3)).toEqual([{ rowsAffected: 1 }, [{ v: 1 }], { rowsAffected: 3 }]);
    } finally {
      await db.close();
    }
  });

  it('an autocommit statement costs one promise and releases its connection', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1 });
    try {
      const res = db.resource;
      await res.query('SELECT 1', undefined, { suspended: [] }); // opens the connection
      const seen: unknown[] = [];
      const viaAdapter = async (): Promise<void> => {
        seen.push(await res.query('SELECT v FROM t WHERE id = $1', [2], { suspended: [] }));
        seen.push(await res.execute('UPDATE t SET v = v WHERE id > $1', [0], { suspended: [] }));
      };
      const oneEach = async (): Promise<void> => {
        await Promise.resolve([]);
        await Promise.resolve({ rowsAffected: 2 });
      };
      let adapter = Number.POSITIVE_INFINITY;
      for (let run = 0; run < 5; run++) adapter = Math.min(adapter, await promisesDuring(viaAdapter));
      expect(adapter).toBe(await promisesDuring(oneEach));
      expect(seen.slice(0, 2)).toEqual([[{ v: expect.any(Number) }], { rowsAffected: 2 }]);
      expect(db.poolStatus()).toMatchObject({ checkedOut: 0, idle: 1 });
      const e = await rejection(res.query('SELECT nope FROM t', undefined, { suspended: [] }));
      expect((e as { sqlState?: string }).sqlState).toBe('42703');
      expect(db.poolStatus()).toMatchObject({ checkedOut: 0, idle: 1 });
    } finally {
      await db.close();
    }
  });

  it('a deadline passing while waiting for a connection fails the wait, and the late connection returns', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1 });
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      let started!: () => void;
      const holding = new Promise<void>((r) => {
        started = r;
      });
      const holder = db.transaction(async (tx) => {
        await tx.execute('UPDATE t SET v = v + 1 WHERE id = 1');
        started();
        await held;
      });
      await holding;
      const e = await rejection(db.transaction(async () => {}, { timeoutMs: 50 }));
      expect(e).toBeInstanceOf(TransactionTimeoutError);
      expect((e as Error).message).toContain('waited for a connection');
      release();
      await holder;
      // The given-up waiter's connection went straight back: nothing is checked out or waiting.
      expect(db.poolStatus()).toMatchObject({ checkedOut: 0, waiting: 0 });
      await db.transaction(async (tx) => void (await tx.execute('UPDATE t SET v = v + 1 WHERE id = 1')));
    } finally {
      await db.close();
    }
  });

  it('acquireTimeoutMs bounds the wait with PoolTimeoutError, and the late connection returns', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1, acquireTimeoutMs: 50 });
    try {
      const manual = await db.begin();
      const e = await rejection(db.query('SELECT 1'));
      expect(e).toBeInstanceOf(PoolTimeoutError);
      expect((e as Error).message).toContain('waited 50 ms for a connection');
      const inTx = await rejection(db.transaction(async () => {}, { name: 'second' }));
      expect(inTx).toBeInstanceOf(PoolTimeoutError);
      expect((inTx as Error).message).toMatch(/^transaction \S+ \(second\) waited 50 ms/);
      await manual.commit();
      expect(db.poolStatus()).toMatchObject({ checkedOut: 0, waiting: 0 });
      expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
    }
  });
});
