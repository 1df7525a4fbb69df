/**
 * The PostgreSQL adapter under the engine, on the real server.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CheckViolationError,
  CommitOutcomeUnknownError,
  ConnectionLostError,
  ForeignKeyViolationError,
  IdleInTransactionTimeoutError,
  InvalidIdentifierError,
  InvalidOptionError,
  LockTimeoutError,
  PrepareFailedError,
  RawTransactionControlError,
  ReadOnlyTransactionError,
  StatementTimeoutError,
  TransactionAbortedError,
  TransactionCancelledError,
  TransactionClosedError,
  TransactionRolledBackError,
  TransactionTimeoutError,
  UniqueViolationError,
} from '../../src/core/errors.js';
import { type PostgresDatabase, postgres } from '../../src/sql/postgres/index.js';
import { delayingProxy } from '../support/delaying-proxy.js';
import {
  busyBackends,
  connect,
  createTestDatabase,
  type Instrumented,
  instrumentedPool,
  PG_URL,
  rejection,
  type TestDatabase,
  waitUntilBlocked,
} from './helpers.js';

describe.skipIf(!PG_URL)('postgres adapter (real server)', () => {
  let tdb: TestDatabase;
  let inst: Instrumented;
  let db: PostgresDatabase;
  let observer: pg.Client;

  beforeAll(async () => {
    tdb = await createTestDatabase('adapter');
    inst = instrumentedPool(tdb.url, 4);
    db = postgres({ pool: inst.pool, endPoolOnClose: true, acquireTimeoutMs: 5_000 });
    observer = await connect(tdb.url);
    await observer.query(`
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL UNIQUE, balance int NOT NULL CHECK (balance >= 0));
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (id int PRIMARY KEY,
        parent_id int REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
    `);
  });
  beforeEach(async () => {
    await observer.query(
      "TRUNCATE accounts, child, parent; INSERT INTO accounts VALUES (1, 'alice', 1000), (2, 'bob', 500)",
    );
    inst.log.length = 0;
  });
  afterAll(async () => {
    // whatever the tests did, no pooled connection is left inside a transaction
    if (observer) expect(await busyBackends(observer, tdb.name)).toEqual([]);
    await db?.close();
    await observer?.end();
    await tdb?.drop();
  });

  const balances = async () =>
    (await observer.query<{ balance: number }>('SELECT balance FROM accounts ORDER BY id')).rows.map(
      (r) => r.balance,
    );

  it('sends isolation, READ ONLY and DEFERRABLE in the one BEGIN, and reports the level truthfully', async () => {
    const seen: Record<string, [string, string]> = {};
    for (const level of ['read uncommitted', 'read committed', 'repeatable read', 'serializable'] as const) {
      await db.transaction(
        async (tx) => {
          const [row] = await tx.query<{ transaction_isolation: string }>('SHOW transaction_isolation');
          seen[level] = [tx.isolation, row!.transaction_isolation];
        },
        { isolation: level },
      );
    }
    expect(seen).toEqual({
      'read uncommitted': ['read committed', 'read committed'],
      'read committed': ['read committed', 'read committed'],
      'repeatable read': ['repeatable read', 'repeatable read'],
      serializable: ['serializable', 'serializable'],
    });
    expect(db.capabilities.isolation['read uncommitted'].effective).toBe('read committed');
    inst.log.length = 0;
    await db.transaction(
      async (tx) => {
        const [r] = await tx.query<{ d: string }>('SHOW transaction_deferrable');
        expect(Object.values(r!)[0]).toBe('on');
        expect(tx.readOnly).toBe(true);
      },
      { isolation: 'serializable', readOnly: true, deferrable: true },
    );
    expect(inst.log[0]).toBe('BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE');
    expect(inst.log.at(-1)).toBe('COMMIT');
    const def = await db.transaction(async (tx) => tx.isolation);
    expect(def).toBe('read committed');
    expect(await rejection(db.transaction(async () => {}, { deferrable: true }))).toBeInstanceOf(
      InvalidOptionError,
    );
  });

  it('durability relaxed turns synchronous_commit off for that transaction only; serverTxId is lazy', async () => {
    const seen = await db.transaction(
      async (tx) => {
        const before = await tx.serverTxId();
        const [r] = await tx.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
        await tx.execute('UPDATE accounts SET balance = balance WHERE id = 1');
        return { before, after: await tx.serverTxId(), sync: r!.synchronous_commit };
      },
      { durability: 'relaxed' },
    );
    expect(seen.before).toBeNull(); // reading did not force a transaction id
    expect(seen.after).toMatch(/^\d+$/);
    expect(seen.sync).toBe('off');
    const [after] = await db.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
    expect(after!.synchronous_commit).toBe('on');
    expect(await rejection(db.transaction(async () => {}, { durability: 'fast' as never }))).toBeInstanceOf(
      InvalidOptionError,
    );
  });

  it('rejects writes in a read-only transaction', async () => {
    const e = await rejection(
      db.transaction(async (tx) => tx.execute('UPDATE accounts SET balance = 0'), { readOnly: true }),
    );
    expect(e).toBeInstanceOf(ReadOnlyTransactionError);
    expect(await balances()).toEqual([1000, 500]);
  });

  it('rolls back when the callback throws and closes the tx afterwards', async () => {
    let captured: { query: (s: string) => Promise<unknown> } | undefined;
    const e = await rejection(
      db.transaction(async (tx) => {
        captured = tx;
        await tx.execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [100, 1]);
        throw new Error('系统异常,转账失败');
      }),
    );
    expect((e as Error).message).toBe('系统异常,转账失败');
    expect(await balances()).toEqual([1000, 500]);
    expect(await rejection(captured!.query('SELECT 1'))).toBeInstanceOf(TransactionClosedError);
  });

  it('after a statement error the tx is aborted: later statements fail fast without a round trip', async () => {
    const e = await rejection(
      db.transaction(async (tx) => {
        await tx.execute('UPDATE accounts SET balance = balance + 1 WHERE id = 1');
        const dup = await rejection(tx.execute("INSERT INTO accounts VALUES (3, 'alice', 1)"));
        expect(dup).toBeInstanceOf(UniqueViolationError);
        expect(tx.state).toBe('aborted');
        const sent = inst.log.length;
        expect(await rejection(tx.query('SELECT 1'))).toBeInstanceOf(TransactionAbortedError);
        expect(inst.log.length).toBe(sent);
        return 'caught it';
      }),
    );
    expect(e).toBeInstanceOf(TransactionRolledBackError);
    expect(inst.log.at(-1)).toBe('ROLLBACK');
    expect(await balances()).toEqual([1000, 500]);
  });

  it('a nested scope that fails rolls back to its savepoint and the outer commits', async () => {
    await db.transaction(async (tx) => {
      await tx.execute('UPDATE accounts SET balance = balance - 100 WHERE id = 1');
      const inner = await rejection(
        db.transaction(async (inner) => {
          await inner.execute('UPDATE accounts SET balance = balance + 100 WHERE id = 2');
          await inner.execute('UPDATE accounts SET balance = -1 WHERE id = 2');
        }),
      );
      expect(inner).toBeInstanceOf(CheckViolationError);
      expect(tx.state).toBe('active');
      await tx.execute('UPDATE accounts SET balance = balance + 100 WHERE id = 1');
    });
    expect(await balances()).toEqual([1000, 500]);
    expect(inst.log).toContain('ROLLBACK TO SAVEPOINT "sp_1"');
    expect(inst.log).toContain('RELEASE SAVEPOINT "sp_1"');
  });

  it('rejects raw transaction control and unsafe savepoint names without disturbing the tx', async () => {
    await db.transaction(async (tx) => {
      expect(await rejection(tx.query('COMMIT'))).toBeInstanceOf(RawTransactionControlError);
      expect(await rejection(tx.execute('select 1; ROLLBACK'))).toBeInstanceOf(RawTransactionControlError);
      for (const bad of ['x; DROP TABLE accounts; --', 'a"b', '1abc', '', 'a b']) {
        expect(await rejection(tx.savepoint(bad)), bad).toBeInstanceOf(InvalidIdentifierError);
      }
      expect(tx.state).toBe('active');
      await tx.execute('UPDATE accounts SET balance = 1 WHERE id = 1');
      const sp = await tx.savepoint('before_bob');
      await tx.execute('UPDATE accounts SET balance = 2 WHERE id = 2');
      await sp.rollback();
    });
    expect(await balances()).toEqual([1, 500]);
    expect(await rejection(db.query('BEGIN'))).toBeInstanceOf(RawTransactionControlError);
    expect(await rejection(db.query('SELECT $1::int', { a: 1 } as never))).toMatchObject({
      code: 'E_INVALID_ARGUMENT',
    });
  });

  it('a COMMIT answered with ROLLBACK is reported as rolled back, never as success', async () => {
    const handle = await db.resource.begin({
      txId: 't1',
      readOnly: false,
      deferrable: false,
      suspended: [],
      extra: {},
    });
    await handle.execute('UPDATE accounts SET balance = 0 WHERE id = 1');
    await rejection(handle.query('SELECT 1/0'));
    inst.log.length = 0;
    const e = await rejection(handle.commit());
    expect(inst.log).toEqual(['COMMIT']); // the server was asked, and answered ROLLBACK
    expect(e).toBeInstanceOf(TransactionRolledBackError);
    expect((e as Error).message).toContain('answered ROLLBACK');
    expect(await balances()).toEqual([1000, 500]);
    // and through the engine: a manual tx whose error was caught refuses to commit
    const tx = await db.begin();
    await rejection(tx.execute("INSERT INTO accounts VALUES (1, 'x', 1)"));
    expect(await rejection(tx.commit())).toBeInstanceOf(TransactionRolledBackError);
  });

  it('a deferred foreign key failing at COMMIT is a typed error and nothing persists', async () => {
    const e = await rejection(db.transaction(async (tx) => tx.execute('INSERT INTO child VALUES (1, 42)')));
    expect(e).toBeInstanceOf(ForeignKeyViolationError);
    expect((await observer.query('SELECT count(*)::int AS n FROM child')).rows[0].n).toBe(0);
  });

  it('statement and lock timeouts via SET LOCAL abort the tx, which txkit rolls back', async () => {
    const st = await rejection(
      db.transaction(async (tx) => tx.query('SELECT pg_sleep(5)'), { statementTimeoutMs: 50 }),
    );
    expect(st).toBeInstanceOf(StatementTimeoutError);
    expect(inst.log).toContain("SELECT set_config('statement_timeout', $1, true)");
    await observer.query('BEGIN');
    await observer.query('SELECT * FROM accounts WHERE id = 1 FOR UPDATE');
    try {
      const lt = await rejection(
        db.transaction(async (tx) => tx.execute('UPDATE accounts SET balance = 0 WHERE id = 1'), {
          lockTimeoutMs: 50,
        }),
      );
      expect(lt).toBeInstanceOf(LockTimeoutError);
    } finally {
      await observer.query('ROLLBACK');
    }
    expect(await rejection(db.transaction(async () => {}, { lockTimeoutMs: -1 }))).toBeInstanceOf(
      InvalidOptionError,
    );
    expect(await rejection(db.transaction(async () => {}, { statementTimeoutMs: 1.5 }))).toBeInstanceOf(
      InvalidOptionError,
    );
    expect(await rejection(db.transaction(async () => {}, { lockTimeout: 5 } as never))).toBeInstanceOf(
      InvalidOptionError,
    );
  });

  it('the idle-in-transaction timeout ends the session: IdleInTransactionTimeoutError on next use', async () => {
    const e = await rejection(
      db.transaction(
        async (tx) => {
          await tx.query('SELECT 1');
          const pid = (tx as unknown as { processId: number }).processId;
          // wait until the server has ended that session (event-driven: poll the server)
          for (let i = 0; i < 500; i++) {
            const { rows } = await observer.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
            if (rows.length === 0) break;
            await new Promise((r) => setTimeout(r, 10));
          }
          await tx.query('SELECT 2');
        },
        { idleInTransactionTimeoutMs: 50 },
      ),
    );
    expect(e).toBeInstanceOf(IdleInTransactionTimeoutError);
  });

  it('a deadline cancels the running statement on the server', async () => {
    const started = performance.now();
    const e = await rejection(
      db.transaction(async (tx) => tx.query('SELECT pg_sleep(20)'), { timeoutMs: 150 }),
    );
    expect(e).toBeInstanceOf(TransactionTimeoutError);
    expect(performance.now() - started).toBeLessThan(5_000);
    for (let i = 0; i < 300; i++) {
      const { rows } = await observer.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(20)%' AND state = 'active'",
        [tdb.name],
      );
      if (rows.length === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const { rows } = await observer.query(
      "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(20)%' AND state = 'active'",
      [tdb.name],
    );
    expect(rows).toEqual([]);
  });

  it('an AbortSignal cancels the running statement on the server too', async () => {
    const ac = new AbortController();
    const started = performance.now();
    const running = db.transaction(
      async (tx) => {
        setImmediate(() => ac.abort(new Error('user left')));
        await tx.query('SELECT pg_sleep(20)');
      },
      { signal: ac.signal },
    );
    const e = await rejection(running);
    expect(e).toBeInstanceOf(TransactionCancelledError);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('a cancel that overtakes its statement is sent again until the statement stops', async () => {
    // The statement reaches the server 300 ms late, so the first cancel finds the session
    // idle, and PostgreSQL drops a cancel that arrives while it waits for a command.
    const proxy = await delayingProxy(Number(new URL(tdb.url).port));
    const pool = new pg.Pool({
      connectionString: proxy.urlFor(tdb.url),
      max: 1,
      statement_timeout: 15_000,
    } as pg.PoolConfig);
    let clientPort = -1;
    pool.on('connect', (c) => {
      clientPort = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream
        .localPort;
    });
    const slow = postgres({ pool, endPoolOnClose: true });
    try {
      const ac = new AbortController();
      const started = performance.now();
      const e = await rejection(
        slow.transaction(
          async (tx) => {
            proxy.delay(clientPort, 300);
            setImmediate(() => ac.abort(new Error('user left')));
            await tx.query('SELECT pg_sleep(19)');
          },
          { signal: ac.signal },
        ),
      );
      expect(e).toBeInstanceOf(TransactionCancelledError);
      expect(performance.now() - started).toBeLessThan(5_000);
      const { rows } = await observer.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(19)%' AND state = 'active'",
        [tdb.name],
      );
      expect(rows).toEqual([]);
    } finally {
      await slow.close();
      await proxy.close();
    }
  });

  it('connection lost after COMMIT was sent → CommitOutcomeUnknownError (state unknown, never retried)', async () => {
    const events: string[] = [];
    const off = db.on('unknown', () => events.push('unknown'));
    let attempts = 0;
    inst.dropOnCommit = 'after';
    const e = await rejection(
      db.transaction(
        async (tx) => {
          attempts++;
          await tx.execute('UPDATE accounts SET balance = 7 WHERE id = 1');
        },
        { retry: { maxAttempts: 3, baseDelayMs: 1 } },
      ),
    );
    off();
    expect(e).toBeInstanceOf(CommitOutcomeUnknownError);
    expect(attempts).toBe(1);
    expect(events).toEqual(['unknown']);
  });

  it('connection lost before COMMIT → ConnectionLostError: rolled back, safe to retry', async () => {
    inst.dropOnCommit = 'before';
    const e = await rejection(
      db.transaction(async (tx) => tx.execute('UPDATE accounts SET balance = 8 WHERE id = 1')),
    );
    // The socket was gone before COMMIT could be written: pg fails it as a lost connection,
    // and the adapter cannot know whether bytes left, so it says "unknown" unless it saw the
    // connection die first.
    expect([ConnectionLostError, CommitOutcomeUnknownError].some((c) => e instanceof c)).toBe(true);
    expect(await balances()).toEqual([1000, 500]);
  });

  it('tx.notify is delivered on commit and dropped on rollback; a notifying tx cannot be prepared', async () => {
    const notifier = db.notifier();
    try {
      const it = notifier.iterate('acct');
      await it.ready;
      await rejection(
        db.transaction(async (tx) => {
          await tx.notify('acct', 'rolled-back');
          throw new Error('no');
        }),
      );
      await db.transaction(async (tx) => {
        await tx.notify('acct', 'committed');
      });
      expect((await it.next()).value.payload).toBe('committed');
      await it.return!();
      expect(await rejection(db.transaction(async (tx) => tx.notify('bad name', 'x')))).toBeInstanceOf(
        InvalidIdentifierError,
      );
      const tx = await db.begin();
      await tx.notify('acct', 'x');
      expect(await rejection(tx.physical.handle.prepare!('txkit-notify-test'))).toBeInstanceOf(
        PrepareFailedError,
      );
    } finally {
      await notifier.close();
    }
  });

  it('prepare through the resource SPI, then commitPrepared / rollbackPrepared on the database', async () => {
    const tx = await db.begin();
    await tx.execute('UPDATE accounts SET balance = 11 WHERE id = 1');
    await tx.physical.handle.prepare!('txkit:adapter:1');
    expect((await db.listPrepared('txkit:adapter:')).map((p) => p.gid)).toEqual(['txkit:adapter:1']);
    expect(await balances()).toEqual([1000, 500]);
    await db.commitPrepared('txkit:adapter:1');
    expect(await balances()).toEqual([11, 500]);
    expect(await db.rollbackPrepared('txkit:adapter:1')).toBe(false);
    expect(await db.preflightPrepared()).toBeGreaterThan(0);
  });

  it('autocommit statements outside a transaction are independent', async () => {
    await db.execute("INSERT INTO accounts VALUES (3, 'c', 1)");
    await db.execute("INSERT INTO accounts VALUES (4, 'd', 1)");
    expect(await rejection(db.execute("INSERT INTO accounts VALUES (5, 'e', -1)"))).toBeInstanceOf(
      CheckViolationError,
    );
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM accounts'))[0]!.n).toBe(4);
    expect(await db.execute('UPDATE accounts SET balance = balance WHERE id > 2')).toEqual({
      rowsAffected: 2,
    });
  });

  it('waits for statements the callback did not await, and fails if one of them failed', async () => {
    const e = await rejection(
      db.transaction(async (tx) => {
        void tx.execute('UPDATE accounts SET balance = 5 WHERE id = 1');
        void tx.execute('UPDATE accounts SET balance = -5 WHERE id = 2').catch(() => {});
      }),
    );
    // the failure of the un-awaited statement decides: either itself, or the rollback it caused
    const failure = e instanceof TransactionRolledBackError ? (e as Error).cause : e;
    expect(failure).toBeInstanceOf(CheckViolationError);
    expect(await balances()).toEqual([1000, 500]);
  });

  it('a lock wait can be watched from outside while it happens', async () => {
    await observer.query('BEGIN');
    await observer.query('SELECT * FROM accounts WHERE id = 2 FOR UPDATE');
    let pid = 0;
    const waiting = db.transaction(async (tx) => {
      pid = (tx as unknown as { processId: number }).processId;
      await tx.execute('UPDATE accounts SET balance = 1 WHERE id = 2');
    });
    for (let i = 0; i < 200 && pid === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await waitUntilBlocked(observer, pid);
    await observer.query('ROLLBACK');
    await waiting;
    expect(await balances()).toEqual([1000, 1]);
  });
});
