/**
 * Pool hygiene on the real server: a connection goes back to the pool only outside any
 * transaction (checked by a property test over random transaction outcomes), and
 * `requires_new` cannot silently deadlock the pool or itself.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, PoolTimeoutError, SelfDeadlockError } from '../../src/core/errors.js';
import { type PostgresDatabase, postgres } from '../../src/sql/postgres/index.js';
import {
  busyBackends,
  connect,
  createTestDatabase,
  type Instrumented,
  instrumentedPool,
  PG_URL,
  rejection,
  type TestDatabase,
} from './helpers.js';

/** A requires_new transaction that updates the row its own suspended outer one has locked. */
function innerWaitsOnOuter(db: PostgresDatabase): Promise<unknown> {
  return rejection(
    db.transaction(async (outer) => {
      await outer.execute('UPDATE t SET v = v + 1 WHERE id = 2');
      await db.transaction(async (inner) => inner.execute('UPDATE t SET v = v + 1 WHERE id = 2'), {
        propagation: 'requires_new',
      });
    }),
  );
}

describe.skipIf(!PG_URL)('postgres pool hygiene (real server)', () => {
  let tdb: TestDatabase;
  let observer: pg.Client;

  beforeAll(async () => {
    tdb = await createTestDatabase('pool');
    observer = await connect(tdb.url);
    await observer.query('CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL CHECK (v >= 0))');
    await observer.query('INSERT INTO t VALUES (1, 0), (2, 0)');
  });
  afterAll(async () => {
    await observer?.end();
    await tdb?.drop();
  });

  type Op =
    | 'commit'
    | 'throw'
    | 'caught-error'
    | 'statement-timeout'
    | 'nested-failure'
    | 'rollback-only'
    | 'manual-rollback'
    | 'commit-unknown'
    | 'deadline';

  const run = async (db: PostgresDatabase, inst: Instrumented, op: Op): Promise<void> => {
    const bump = 'UPDATE t SET v = v + 1 WHERE id = 1';
    switch (op) {
      case 'commit':
        return db.transaction(async (tx) => void (await tx.execute(bump)));
      case 'throw':
        await rejection(
          db.transaction(async (tx) => {
            await tx.execute(bump);
            throw new Error('x');
          }),
        );
        return;
      case 'caught-error':
        await rejection(
          db.transaction(async (tx) => {
            await rejection(tx.execute('UPDATE t SET v = -1 WHERE id = 1'));
          }),
        );
        return;
      case 'statement-timeout':
        await rejection(
          db.transaction(async (tx) => tx.query('SELECT pg_sleep(2)'), { statementTimeoutMs: 20 }),
        );
        return;
      case 'nested-failure':
        return db.transaction(async (tx) => {
          await rejection(db.transaction(async (inner) => inner.execute('UPDATE t SET v = -1 WHERE id = 2')));
          await tx.execute(bump);
        });
      case 'rollback-only':
        return db.transaction(async (tx) => {
          await tx.execute(bump);
          tx.setRollbackOnly();
        });
      case 'manual-rollback': {
        const tx = await db.begin({ isolation: 'serializable' });
        await tx.execute(bump);
        await tx.rollback();
        return;
      }
      case 'commit-unknown':
        inst.dropOnCommit = 'after';
        await rejection(db.transaction(async (tx) => tx.execute(bump)));
        return;
      case 'deadline':
        await rejection(db.transaction(async (tx) => tx.query('SELECT pg_sleep(2)'), { timeoutMs: 30 }));
        return;
    }
  };

  it('never hands out a connection inside a transaction, whatever the transactions did (property)', async () => {
    const inst = instrumentedPool(tdb.url, 2);
    const db = postgres({ pool: inst.pool, endPoolOnClose: true });
    const ops: Op[] = [
      'commit',
      'throw',
      'caught-error',
      'statement-timeout',
      'nested-failure',
      'rollback-only',
      'manual-rollback',
      'commit-unknown',
      'deadline',
    ];
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.constantFrom(...ops), { minLength: 1, maxLength: 6 }), async (seq) => {
          for (const op of seq) await run(db, inst, op);
          // Every connection the pool would hand out next is idle on the server…
          const clients = await Promise.all([inst.pool.connect(), inst.pool.connect()]);
          try {
            for (const c of clients) {
              expect((c as unknown as { getTransactionStatus(): string }).getTransactionStatus()).toBe('I');
              const { rows } = await c.query<{ x: string | null }>(
                'SELECT pg_current_xact_id_if_assigned()::text AS x',
              );
              expect(rows[0]!.x).toBeNull();
            }
          } finally {
            for (const c of clients) c.release();
          }
          // …and no session of this database is left inside a transaction.
          expect(
            (await busyBackends(observer, tdb.name)).filter((b) => b.state.startsWith('idle in')),
          ).toEqual([]);
        }),
        { numRuns: 15 },
      );
    } finally {
      await db.close();
    }
  });

  it('requires_new cannot silently deadlock the pool: PoolTimeoutError names the propagation', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1, acquireTimeoutMs: 200 });
    try {
      const e = await rejection(
        db.transaction(async () => {
          await db.transaction(async () => {}, { propagation: 'requires_new' });
        }),
      );
      expect(e).toBeInstanceOf(PoolTimeoutError);
      expect((e as Error).message).toContain("'requires_new'");
      expect((e as Error).message).toContain('pool max 1');
      // the outer connection went back clean, and the pool still works
      expect(await db.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('requires_new waiting on its own suspended outer transaction’s row lock fails fast instead of hanging', async () => {
    const db = postgres({ connectionString: tdb.url, max: 3, suspendedLockTimeoutMs: 100 });
    try {
      const started = performance.now();
      const e = await innerWaitsOnOuter(db);
      expect(e).toBeInstanceOf(LockTimeoutError);
      expect(performance.now() - started).toBeLessThan(5_000);
      // and requires_new really is a separate transaction: its work survives the outer rollback
      await rejection(
        db.transaction(async (outer) => {
          await db.transaction(async (inner) => inner.execute('UPDATE t SET v = 100 WHERE id = 2'), {
            propagation: 'requires_new',
          });
          await outer.execute('UPDATE t SET v = 0 WHERE id = 1');
          throw new Error('outer fails');
        }),
      );
      expect((await observer.query('SELECT v FROM t WHERE id = 2')).rows[0].v).toBe(100);
    } finally {
      await db.close();
    }
  });

  it('requires_new blocked by its own suspended outer transaction is diagnosed as SelfDeadlockError', async () => {
    const db = postgres({ connectionString: tdb.url, max: 3 }); // default 5 s bound: the diagnosis comes first
    try {
      const started = performance.now();
      const e = await innerWaitsOnOuter(db);
      expect(e).toBeInstanceOf(SelfDeadlockError);
      expect((e as Error).message).toContain('its own suspended outer transaction');
      expect(performance.now() - started).toBeLessThan(3_000);
      // an inner transaction blocked by an unrelated session is not mislabelled
      await observer.query('BEGIN');
      await observer.query('SELECT * FROM t WHERE id = 1 FOR UPDATE');
      try {
        const other = await rejection(
          db.transaction(async () => {
            await db.transaction(async (inner) => inner.execute('UPDATE t SET v = 0 WHERE id = 1'), {
              propagation: 'requires_new',
              lockTimeoutMs: 600,
            });
          }),
        );
        expect(other).toBeInstanceOf(LockTimeoutError);
      } finally {
        await observer.query('ROLLBACK');
      }
    } finally {
      await db.close();
    }
  });

  it("not_supported work waiting on its own suspended transaction's lock fails fast too", async () => {
    const db = postgres({ connectionString: tdb.url, max: 3, suspendedLockTimeoutMs: 100 });
    try {
      const e = await rejection(
        db.transaction(async (outer) => {
          await outer.execute('UPDATE t SET v = v + 1 WHERE id = 1');
          await db.transaction(async () => db.execute('UPDATE t SET v = v + 1 WHERE id = 1'), {
            propagation: 'not_supported',
          });
        }),
      );
      expect(e).toBeInstanceOf(LockTimeoutError);
      // the session setting was reset before the connection went back
      const settings = await Promise.all(
        [1, 2, 3].map(() => db.query<{ lock_timeout: string }>('SHOW lock_timeout')),
      );
      for (const [row] of settings) expect(row!.lock_timeout).toBe('0');
    } finally {
      await db.close();
    }
  });

  it('a connection left inside a transaction by raw SQL is destroyed, not pooled', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1, allowRawTransactionControl: true });
    const destroyed: string[] = [];
    db.resource.events.on('connection-destroyed', (e) => destroyed.push(e.reason));
    try {
      await db.execute('BEGIN'); // allowed by the option; leaves the session in a transaction
      expect(destroyed).toEqual(["the server reports transaction status 'T', not idle"]);
      const [row] = await db.query<{ x: string | null }>(
        'SELECT pg_current_xact_id_if_assigned()::text AS x',
      );
      expect(row!.x).toBeNull();
      expect(await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 2 }]);
    } finally {
      await db.close();
    }
  });

  it('an idle pooled connection killed by the server is reported, not fatal, and replaced', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1 });
    try {
      const errors: unknown[] = [];
      const reported = new Promise<void>((resolve) =>
        db.resource.events.on('error', (e) => {
          errors.push(e);
          resolve();
        }),
      );
      const [{ pid }] = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [
        { pid: number },
      ];
      await observer.query('SELECT pg_terminate_backend($1)', [pid]);
      await reported;
      expect(errors[0]).toMatchObject({ source: 'pool' });
      const [{ pid: next }] = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [
        { pid: number },
      ];
      expect(next).not.toBe(pid);
    } finally {
      await db.close();
    }
  });

  it('re-emits the pool events with its occupancy', async () => {
    const db = postgres({ connectionString: tdb.url, max: 2 });
    const seen: string[] = [];
    const removed = new Promise<void>((resolve) => db.resource.events.on('pool:remove', () => resolve()));
    for (const e of ['pool:connect', 'pool:acquire', 'pool:release', 'pool:remove'] as const) {
      db.resource.events.on(e, (info) => {
        seen.push(e);
        expect(info.total).toBeGreaterThanOrEqual(0);
      });
    }
    try {
      await db.transaction(async (tx) => tx.query('SELECT 1'));
      expect(seen).toEqual(['pool:connect', 'pool:acquire', 'pool:release']);
    } finally {
      await db.close();
    }
    await removed; // closing the pool removes its connection
    expect(seen.at(-1)).toBe('pool:remove');
  });

  it('rejects bad options with a message saying what is allowed', () => {
    expect(() => postgres({} as never)).toThrow(/connectionString, poolConfig or pool/);
    expect(() => postgres({ connectionString: tdb.url, acquireTimeoutMs: 0 })).toThrow(/acquireTimeoutMs/);
    expect(() => postgres({ connectionString: tdb.url, bogus: 1 } as never)).toThrow(
      /unknown postgres option 'bogus'/,
    );
  });
});
