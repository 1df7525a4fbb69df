/**
 * Concurrency on the real server: what each isolation level prevents (checked against
 * db.capabilities), deadlocks, serialization failures at COMMIT, and exact concurrent
 * increments. Explicit barriers, no sleeps.
 */
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DeadlockError, isRetryable, SerializationFailureError } from '../../src/core/errors.js';
import type { Anomaly, IsolationLevel } from '../../src/core/resource.js';
import { type PostgresDatabase, postgres } from '../../src/sql/postgres/index.js';
import { connect, createTestDatabase, PG_URL, type TestDatabase, waitUntilBlocked } from './helpers.js';

function barrier(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

describe.skipIf(!PG_URL)('postgres concurrency (real server)', () => {
  let tdb: TestDatabase;
  let db: PostgresDatabase;
  let observer: pg.Client;

  beforeAll(async () => {
    tdb = await createTestDatabase('conc');
    observer = await connect(tdb.url);
    // Faster deadlock detection for the tests (superuser-only; the default is 1 s).
    await observer.query(`ALTER DATABASE "${tdb.name}" SET deadlock_timeout = '100ms'`).catch(() => {});
    db = postgres({ connectionString: tdb.url, max: 10, acquireTimeoutMs: 10_000 });
    await observer.query(`
      CREATE TABLE kv (k text PRIMARY KEY, v int NOT NULL);
      CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL);
    `);
  });
  beforeEach(async () => {
    await observer.query(`
      TRUNCATE kv, doctors;
      INSERT INTO kv VALUES ('x', 100), ('y', 100), ('counter', 0);
      INSERT INTO doctors VALUES ('alice', true), ('bob', true);
    `);
  });
  afterAll(async () => {
    await db?.close();
    await observer?.end();
    await tdb?.drop();
  });

  const get = async (k: string): Promise<number> =>
    (await observer.query<{ v: number }>('SELECT v FROM kv WHERE k = $1', [k])).rows[0]!.v;

  type Scenario = (level: IsolationLevel) => Promise<boolean>; // true when the anomaly occurred

  /** T1 and T2 as manual transactions at `level`. */
  const pair = async (level: IsolationLevel) => [
    await db.begin({ isolation: level }),
    await db.begin({ isolation: level }),
  ];

  const scenarios: Record<Anomaly, Scenario> = {
    async dirty_read(level) {
      const [t1, t2] = await pair(level);
      await t1!.execute("UPDATE kv SET v = 999 WHERE k = 'x'");
      const seen = (await t2!.query<{ v: number }>("SELECT v FROM kv WHERE k = 'x'"))[0]!.v;
      await t1!.rollback();
      await t2!.commit();
      return seen === 999;
    },
    async non_repeatable_read(level) {
      const [t1] = await pair(level).then(async ([a, b]) => {
        await b!.rollback();
        return [a];
      });
      const first = (await t1!.query<{ v: number }>("SELECT v FROM kv WHERE k = 'x'"))[0]!.v;
      await observer.query("UPDATE kv SET v = v + 1 WHERE k = 'x'");
      const second = (await t1!.query<{ v: number }>("SELECT v FROM kv WHERE k = 'x'"))[0]!.v;
      await t1!.commit();
      return first !== second;
    },
    async phantom_read(level) {
      const t1 = await db.begin({ isolation: level });
      const count = async () =>
        (await t1.query<{ n: number }>('SELECT count(*)::int AS n FROM kv WHERE v >= 100'))[0]!.n;
      const before = await count();
      await observer.query("INSERT INTO kv VALUES ('z', 500)");
      const after = await count();
      await t1.commit();
      return before !== after;
    },
    async lost_update(level) {
      const [t1, t2] = await pair(level);
      const read = async (t: typeof t1) =>
        (await t!.query<{ v: number }>("SELECT v FROM kv WHERE k = 'x'"))[0]!.v;
      const v1 = await read(t1);
      const v2 = await read(t2);
      await t1!.execute("UPDATE kv SET v = $1 WHERE k = 'x'", [v1 + 10]);
      const blocked = t2!.execute("UPDATE kv SET v = $1 WHERE k = 'x'", [v2 + 5]).then(
        () => undefined,
        (e: unknown) => e,
      );
      await waitUntilBlocked(observer, (t2 as unknown as { processId: number }).processId);
      await t1!.commit();
      const err = await blocked;
      if (err) {
        // prevented: the second writer is refused instead of overwriting
        expect(err).toBeInstanceOf(SerializationFailureError);
        await t2!.rollback();
        return false;
      }
      await t2!.commit();
      return (await get('x')) !== 115;
    },
    async read_skew(level) {
      // invariant x + y = 200; T2 moves 50 from x to y between T1's two reads
      const t1 = await db.begin({ isolation: level });
      const x = (await t1.query<{ v: number }>("SELECT v FROM kv WHERE k = 'x'"))[0]!.v;
      await observer.query(
        "BEGIN; UPDATE kv SET v = v - 50 WHERE k = 'x'; UPDATE kv SET v = v + 50 WHERE k = 'y'; COMMIT",
      );
      const y = (await t1.query<{ v: number }>("SELECT v FROM kv WHERE k = 'y'"))[0]!.v;
      await t1.commit();
      return x + y !== 200;
    },
    async write_skew(level) {
      // invariant: at least one doctor on call; each goes off call after seeing two on call
      const [t1, t2] = await pair(level);
      const onCall = async (t: typeof t1) =>
        (await t!.query<{ n: number }>('SELECT count(*)::int AS n FROM doctors WHERE on_call'))[0]!.n;
      expect(await onCall(t1)).toBe(2);
      expect(await onCall(t2)).toBe(2);
      await t1!.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'");
      const failed = await t2!.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'").then(
        () => false,
        async () => {
          await t2!.rollback();
          return true;
        },
      );
      await t1!.commit();
      if (!failed) {
        const e = await t2!.commit().then(
          () => undefined,
          (err: unknown) => err,
        );
        if (e) expect(e).toBeInstanceOf(SerializationFailureError);
      }
      const { rows } = await observer.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM doctors WHERE on_call',
      );
      return rows[0]!.n === 0;
    },
  };

  const levels: IsolationLevel[] = ['read uncommitted', 'read committed', 'repeatable read', 'serializable'];
  for (const level of levels) {
    it(`${level}: the anomalies that occur are exactly those db.capabilities does not claim to prevent`, async () => {
      const prevents = db.capabilities.isolation[level].prevents;
      const occurred: Anomaly[] = [];
      for (const [anomaly, run] of Object.entries(scenarios) as [Anomaly, Scenario][]) {
        await observer.query(`
          TRUNCATE kv, doctors;
          INSERT INTO kv VALUES ('x', 100), ('y', 100), ('counter', 0);
          INSERT INTO doctors VALUES ('alice', true), ('bob', true);`);
        if (await run(level)) occurred.push(anomaly);
      }
      const expected = (Object.keys(scenarios) as Anomaly[]).filter((a) => !prevents.includes(a));
      expect(occurred).toEqual(expected);
    });
  }

  it('a deadlock gives exactly one DeadlockError; with retry both transactions succeed', async () => {
    const run = async (retry: boolean) => {
      const locked = [barrier(), barrier()];
      const attempts = [0, 0];
      const transfer = (i: 0 | 1) =>
        db.transaction(
          async (tx) => {
            attempts[i]!++;
            const [first, second] = i === 0 ? ['x', 'y'] : ['y', 'x'];
            await tx.execute('UPDATE kv SET v = v - 10 WHERE k = $1', [first]);
            locked[i]!.open();
            await locked[1 - i]!.promise;
            await tx.execute('UPDATE kv SET v = v + 10 WHERE k = $1', [second]);
          },
          retry ? { retry: { maxAttempts: 3, baseDelayMs: 5 } } : {},
        );
      const results = await Promise.allSettled([transfer(0), transfer(1)]);
      return { results, attempts };
    };
    const before = db.metrics().deadlocks;
    const plain = await run(false);
    const rejected = plain.results.filter((r) => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    const err = (rejected[0] as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(DeadlockError);
    expect(isRetryable(err)).toBe(true);
    expect(db.metrics().deadlocks - before).toBe(1);
    // the survivor committed its whole transfer, the victim nothing: x + y unchanged
    expect((await get('x')) + (await get('y'))).toBe(200);

    const retried = await run(true);
    expect(retried.results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(retried.attempts.sort()).toEqual([1, 2]);
    expect((await get('x')) + (await get('y'))).toBe(200);
  });

  it('a serialization failure raised at COMMIT is retried and then succeeds', async () => {
    const bothRead = [barrier(), barrier()];
    const t1Committed = barrier();
    const t2Updated = barrier();
    const attempts = [0, 0];
    const failedAtCommit: boolean[] = [];
    const errors: unknown[] = [];
    const off = db.on('retry', (e) => errors.push(e.error));
    const offRollback = db.on('rollback', (e) => {
      if (e.error instanceof SerializationFailureError) failedAtCommit.push(bodyDone);
    });
    let bodyDone = false;
    const t1 = db.transaction(
      async (tx) => {
        attempts[0]!++;
        await tx.query('SELECT sum(v) FROM kv');
        bothRead[0]!.open();
        await bothRead[1]!.promise;
        await tx.execute("UPDATE kv SET v = v + 1 WHERE k = 'x'");
        await t2Updated.promise; // both have written before either commits
      },
      { isolation: 'serializable' },
    );
    const t2 = db.transaction(
      async (tx) => {
        attempts[1]!++;
        bodyDone = false;
        await tx.query('SELECT sum(v) FROM kv');
        bothRead[1]!.open();
        await bothRead[0]!.promise;
        await tx.execute("UPDATE kv SET v = v + 1 WHERE k = 'y'");
        t2Updated.open();
        await t1Committed.promise;
        bodyDone = true; // everything after this point is the COMMIT
      },
      { isolation: 'serializable', retry: { maxAttempts: 3, baseDelayMs: 1 } },
    );
    await t1;
    t1Committed.open();
    await t2;
    off();
    offRollback();
    expect(attempts).toEqual([1, 2]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SerializationFailureError);
    expect((errors[0] as SerializationFailureError).sqlState).toBe('40001');
    expect(failedAtCommit).toEqual([true]);
    expect(await get('x')).toBe(101);
    expect(await get('y')).toBe(101);
  });

  it('20 concurrent increments give the exact sum with SELECT … FOR UPDATE', async () => {
    const incs = Array.from({ length: 20 }, (_, i) => i + 1);
    await Promise.all(
      incs.map((inc) =>
        db.transaction(async (tx) => {
          const [row] = await tx.query<{ v: number }>("SELECT v FROM kv WHERE k = 'counter' FOR UPDATE");
          await tx.execute("UPDATE kv SET v = $1 WHERE k = 'counter'", [row!.v + inc]);
        }),
      ),
    );
    expect(await get('counter')).toBe(210);
  });

  it('20 concurrent increments give the exact sum with serializable + retry', async () => {
    const incs = Array.from({ length: 20 }, (_, i) => i + 1);
    const before = db.metrics().serializationFailures;
    await Promise.all(
      incs.map((inc) =>
        db.transaction(
          async (tx) => {
            const [row] = await tx.query<{ v: number }>("SELECT v FROM kv WHERE k = 'counter'");
            await tx.execute("UPDATE kv SET v = $1 WHERE k = 'counter'", [row!.v + inc]);
          },
          {
            isolation: 'serializable',
            retry: { maxAttempts: 100, baseDelayMs: 2, maxDelayMs: 50, jitter: 'full' },
          },
        ),
      ),
    );
    expect(await get('counter')).toBe(210);
    // and it really needed the retries
    expect(db.metrics().serializationFailures).toBeGreaterThan(before);
  });
});
