import mysql2 from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ConnectionLostError,
  DeadlockError,
  InvalidIdentifierError,
  InvalidOptionError,
  LockTimeoutError,
  PoolTimeoutError,
  RawTransactionControlError,
  ReadOnlyTransactionError,
  TransactionAbortedError,
  TransactionCancelledError,
  TransactionRolledBackError,
  TransactionTimeoutError,
} from '../../src/core/errors.js';
import {
  connectionRetry,
  deadlockRetry,
  LockNotAvailableError,
  type MysqlDatabase,
  type MysqlTx,
  mysql,
  RowNotFoundError,
  TransactionStateError,
  waitForLockWait,
} from '../../src/sql/mysql/index.js';
import { delayingProxy } from '../support/delaying-proxy.js';
import { tableName, url } from './helpers.js';

type Row = { id: number; v: number };

describe.skipIf(!url)('MySQL transactions on the real server', () => {
  let db: MysqlDatabase;
  let observer: mysql2.Pool;
  const t = tableName('acct');

  /** Sessions on the server running exactly `statement` now. */
  const runningCount = async (statement: string) => {
    const [[row]] = (await observer.query(
      'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = ?',
      [statement],
    )) as unknown as [[{ n: number }]];
    return Number(row.n);
  };

  const values = async () =>
    ((await observer.query(`SELECT id, v FROM \`${t}\` ORDER BY id`)) as unknown as [Row[]])[0].map(
      (r) => r.v,
    );

  beforeAll(async () => {
    db = mysql({ uri: url, connectionLimit: 6 });
    observer = mysql2.createPool({ uri: url, connectionLimit: 3 });
    await db.execute(
      `CREATE TABLE \`${t}\` (id INT PRIMARY KEY, v INT NOT NULL, CONSTRAINT ${t}_pos CHECK (v >= 0)) ENGINE=InnoDB`,
    );
  });
  beforeEach(async () => {
    await db.execute(`DELETE FROM \`${t}\``);
    await db.execute(`INSERT INTO \`${t}\` VALUES (1, 100), (2, 100), (3, 100)`);
  });
  afterAll(async () => {
    await db?.execute(`DROP TABLE IF EXISTS \`${t}\``);
    await db?.close();
    await observer?.end();
  });

  it('begins with SET TRANSACTION then START TRANSACTION; the level applies to that transaction only', async () => {
    // Behaviour, not INNODB_TRX (a cache other test files may hold stale): under read
    // committed a concurrent commit shows between two reads; the next transaction on the
    // same pooled connection is back to repeatable read.
    const one = mysql({ uri: url, connectionLimit: 1 });
    try {
      const readTwice = (opts: Parameters<typeof one.transaction>[1]) =>
        one.transaction(async (tx) => {
          const read = async () => (await tx.query<Row>(`SELECT v FROM \`${t}\` WHERE id = 1`))[0]?.v;
          const first = await read();
          await observer.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
          const second = await read();
          const ro = await tx.query(`UPDATE \`${t}\` SET v = v WHERE id = 2`).then(
            () => 'read-write',
            (e) => (e instanceof ReadOnlyTransactionError ? 'read-only' : String(e)),
          );
          return { changed: first !== second, ro, isolation: tx.isolation };
        }, opts);
      expect(await readTwice({ isolation: 'read committed', readOnly: true })).toEqual({
        changed: true,
        ro: 'read-only',
        isolation: 'read committed',
      });
      expect(await readTwice({ consistentSnapshot: true })).toEqual({
        changed: false,
        ro: 'read-write',
        isolation: 'repeatable read',
      });
    } finally {
      await one.close();
    }
  });

  it('a deadlock between two transactions is classified, and with retry both succeed', async () => {
    let t1First = true;
    let t2First = true;
    let t1Locked!: () => void;
    const t1HasRow1 = new Promise<void>((r) => {
      t1Locked = r;
    });
    let t2Locked!: () => void;
    const t2HasRow2 = new Promise<void>((r) => {
      t2Locked = r;
    });
    const retries: unknown[] = [];
    db.on('retry', (e) => retries.push(e.error));
    let t1Thread = -1;
    const t1 = db.transaction(
      async (tx) => {
        t1Thread = tx.threadId;
        await tx.execute(`UPDATE \`${t}\` SET v = v - 10 WHERE id = 1`);
        if (t1First) {
          t1First = false;
          t1Locked();
          await t2HasRow2;
        }
        await tx.execute(`UPDATE \`${t}\` SET v = v + 10 WHERE id = 2`);
      },
      { retry: deadlockRetry, name: 't1' },
    );
    const t2 = db.transaction(
      async (tx) => {
        await tx.execute(`UPDATE \`${t}\` SET v = v - 20 WHERE id = 2`);
        if (t2First) {
          t2First = false;
          await t1HasRow1;
          t2Locked();
          // Close the cycle only once T1 waits for row 2.
          await waitForLockWait(observer, t1Thread);
        }
        await tx.execute(`UPDATE \`${t}\` SET v = v + 20 WHERE id = 1`);
      },
      { retry: deadlockRetry, name: 't2' },
    );
    await Promise.all([t1, t2]);
    expect(retries).toHaveLength(1);
    expect(retries[0]).toBeInstanceOf(DeadlockError);
    expect((retries[0] as DeadlockError).sqlState).toBe('40001');
    expect(await values()).toEqual([110, 90, 100]);
  });

  it('after a deadlock a later write is refused, never sent, and never committed', async () => {
    const a = await observer.getConnection();
    let caught: unknown;
    let refused: unknown;
    try {
      // `a` is the heavier transaction (two rows), so InnoDB picks ours as the victim.
      await a.query('START TRANSACTION');
      await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id IN (2, 3)`);
      const err = await db
        .transaction(async (tx) => {
          await tx.execute(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
          const blocked = tx.execute(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 2`).catch((e) => e);
          await waitForLockWait(observer, tx.threadId);
          const closing = a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
          caught = await blocked;
          await closing;
          // The deadlock rolled our transaction back; without txkit this write would autocommit.
          refused = await tx.execute(`UPDATE \`${t}\` SET v = v + 1000 WHERE id = 1`).catch((e) => e);
          return 'callback swallowed the errors';
        })
        .catch((e) => e);
      expect(caught).toBeInstanceOf(DeadlockError);
      expect(refused).toBeInstanceOf(TransactionAbortedError);
      // The callback swallowed both errors, yet the transaction cannot commit.
      expect(err).toBeInstanceOf(TransactionRolledBackError);
    } finally {
      await a.query('ROLLBACK');
      a.release();
    }
    expect(await values()).toEqual([100, 100, 100]);
  });

  it('the resource transaction itself refuses statements after a deadlock', async () => {
    const a = await observer.getConnection();
    const handle = (await db.resource.begin({
      txId: 'rt1',
      readOnly: false,
      deferrable: false,
      suspended: [],
      extra: {},
    })) as MysqlTx;
    try {
      await a.query('START TRANSACTION');
      await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id IN (2, 3)`);
      await handle.execute(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
      const blocked = handle.execute(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 2`).catch((e) => e);
      await waitForLockWait(observer, handle.threadId);
      const closing = a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
      const ours = await blocked;
      await closing;
      expect(ours).toBeInstanceOf(DeadlockError);
      expect(handle.usableAfterError(ours)).toBe(false);
      expect(handle.aborted).toBe(true);
      const refused = await handle.execute(`UPDATE \`${t}\` SET v = v + 1000 WHERE id = 1`).catch((e) => e);
      expect(refused).toBeInstanceOf(TransactionAbortedError);
      expect(refused.cause).toBe(ours);
    } finally {
      await handle.rollback();
      await a.query('ROLLBACK');
      a.release();
    }
    expect(await values()).toEqual([100, 100, 100]);
  });

  it('a connection killed mid-transaction: classified, never reused, and the transaction replays on a new one', async () => {
    const threads: number[] = [];
    const destroyed: string[] = [];
    const off = db.resource.events.on('destroy', (e) => destroyed.push(e.reason));
    try {
      await db.transaction(
        async (tx) => {
          threads.push(tx.threadId);
          await tx.execute(`UPDATE \`${t}\` SET v = v + 5 WHERE id = 1`);
          if (threads.length === 1) {
            await observer.query(`KILL CONNECTION ${tx.threadId}`);
            const lost = await tx.execute(`UPDATE \`${t}\` SET v = v + 5 WHERE id = 2`).catch((e) => e);
            expect(lost).toBeInstanceOf(ConnectionLostError);
            expect(lost.retryable).toBe(true);
            const refused = await tx.execute(`UPDATE \`${t}\` SET v = v + 5 WHERE id = 3`).catch((e) => e);
            expect(refused).toBeInstanceOf(TransactionAbortedError);
            throw lost;
          }
          await tx.execute(`UPDATE \`${t}\` SET v = v + 5 WHERE id = 2`);
        },
        { retry: { ...connectionRetry, baseDelayMs: 5 } },
      );
    } finally {
      off();
    }
    expect(threads).toHaveLength(2);
    expect(threads[1]).not.toBe(threads[0]);
    expect(destroyed).toContain('ROLLBACK failed');
    expect(await values()).toEqual([105, 105, 100]);
  });

  it('lock wait timeout: only the statement failed; uncaught, the whole transaction rolls back', async () => {
    const a = await observer.getConnection();
    try {
      await a.query('START TRANSACTION');
      await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 2`);
      let stillOpen: unknown;
      const err = await db
        .transaction(
          async (tx) => {
            await tx.execute(`UPDATE \`${t}\` SET v = v - 50 WHERE id = 1`);
            const e = await tx.execute(`UPDATE \`${t}\` SET v = v + 50 WHERE id = 2`).catch((x) => x);
            // Statement-level: the transaction is still usable...
            stillOpen = (await tx.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = 1`))[0]?.v;
            throw e; // ...but the transfer is half done, so give up.
          },
          { lockWaitTimeoutSec: 1 },
        )
        .catch((e) => e);
      expect(err).toBeInstanceOf(LockTimeoutError);
      expect(stillOpen).toBe(50);
    } finally {
      await a.query('ROLLBACK');
      a.release();
    }
    expect(await values()).toEqual([100, 100, 100]);
  });

  it('lockWaitTimeoutSec is validated per flavour, 0 is honoured, and it never leaks to the next borrower', async () => {
    const one = mysql({ uri: url, connectionLimit: 1 });
    try {
      const inside = await one.transaction(
        async (tx) => {
          const [r] = await tx.query<{ w: number; id: number }>(
            'SELECT @@innodb_lock_wait_timeout AS w, CONNECTION_ID() AS id',
          );
          return r;
        },
        { lockWaitTimeoutSec: 0 },
      );
      expect(inside?.w).toBe(0);
      const after = await one.transaction(async (tx) => {
        const [r] = await tx.query<{ w: number; id: number }>(
          'SELECT @@innodb_lock_wait_timeout AS w, CONNECTION_ID() AS id',
        );
        return r;
      });
      expect(after?.id).toBe(inside?.id); // same pooled connection
      expect(after?.w).toBe((await one.serverLockSettings()).innodbLockWaitTimeout);
      for (const bad of [-1, 1.5, '3; DROP TABLE x', 100_000_001]) {
        await expect(one.transaction(async () => {}, { lockWaitTimeoutSec: bad as never })).rejects.toThrow(
          InvalidOptionError,
        );
      }
    } finally {
      await one.close();
    }
  });

  it('a begin whose queued statements fail part-way destroys the connection: no session setting or open transaction leaks', async () => {
    // SET SESSION innodb_lock_wait_timeout, SET TRANSACTION and XA START are queued together;
    // XA START fails (the gtrid is in use), after the two SET statements succeeded.
    const two = mysql({ uri: url, connectionLimit: 2 });
    const destroyed: string[] = [];
    const off = two.resource.events.on('destroy', (e) => destroyed.push(e.reason));
    const gid = `txk-dup-${process.pid}-${Date.now()}`;
    try {
      const holder = await two.resource.begin({
        txId: 'holder',
        readOnly: false,
        deferrable: false,
        suspended: [],
        extra: { xa: gid },
      });
      const err = await two
        .transaction(async () => 'never', { xa: gid, lockWaitTimeoutSec: 7, isolation: 'serializable' })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(Error);
      expect((err as { driverCode?: unknown }).driverCode).toBe(1440); // XAER_DUPID
      expect(destroyed).toContain('begin failed');
      await holder.rollback();
      // Both pooled connections (the holder's and a fresh one) have the server defaults.
      const global = (await two.serverLockSettings()).innodbLockWaitTimeout;
      const seen = await Promise.all(
        [0, 1].map(() =>
          two.transaction(async (tx) => {
            const [r] = await tx.query<{ w: number }>('SELECT @@innodb_lock_wait_timeout AS w');
            await new Promise((resolve) => setImmediate(resolve)); // keep both connections busy at once
            return r;
          }),
        ),
      );
      for (const r of seen) expect(r?.w).toBe(global);
    } finally {
      off();
      await two.close();
    }
  });

  it('a connection is never handed on inside a transaction', async () => {
    const one = mysql({ uri: url, connectionLimit: 1 });
    try {
      // A callback fails mid-way: the next user of the same connection sees no open transaction.
      let firstThread = -1;
      await one
        .transaction(async (tx) => {
          firstThread = tx.threadId;
          await tx.execute(`UPDATE \`${t}\` SET v = 1 WHERE id = 1`);
          throw new Error('business rule failed');
        })
        .catch(() => {});
      const [state] = await one.query<{ inTx: number; id: number }>(
        'SELECT @@in_transaction AS inTx, CONNECTION_ID() AS id',
      );
      expect(state).toEqual({ inTx: 0, id: firstThread });
      expect(await values()).toEqual([100, 100, 100]);

      // A deadline fires during a long statement: KILL QUERY on the server, rollback, connection reusable.
      const started = Date.now();
      const timedOut = await one
        .transaction(
          async (tx) => {
            await tx.execute(`UPDATE \`${t}\` SET v = 2 WHERE id = 2`);
            await tx.query('SELECT SLEEP(10)');
          },
          { timeoutMs: 300 },
        )
        .catch((e) => e);
      expect(timedOut).toBeInstanceOf(TransactionTimeoutError);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await runningCount('SELECT SLEEP(10)')).toBe(0);
      const [again] = await one.query<{ inTx: number }>('SELECT @@in_transaction AS inTx');
      expect(again?.inTx).toBe(0);
      expect(await values()).toEqual([100, 100, 100]);
    } finally {
      await one.close();
    }
  });

  it('a KILL QUERY that overtakes its statement is sent again until the statement stops', async () => {
    // The statement reaches the server 300 ms late, so the first KILL QUERY finds the session
    // idle, and the server clears that flag before it reads the next statement.
    const proxy = await delayingProxy(Number(new URL(url as string).port));
    const pool = mysql2.createPool({ uri: proxy.urlFor(url as string), connectionLimit: 1 });
    let clientPort = -1;
    pool.on('connection', (c) => {
      clientPort = (c as unknown as { stream: { localPort: number } }).stream.localPort;
    });
    const slow = mysql({ pool });
    const warnings = vi.spyOn(console, 'error');
    try {
      const ac = new AbortController();
      const started = Date.now();
      const e = await slow
        .transaction(
          async (tx) => {
            proxy.delay(clientPort, 300);
            setImmediate(() => ac.abort(new Error('user left')));
            await tx.query('SELECT SLEEP(9)');
          },
          { signal: ac.signal },
        )
        .catch((err) => err);
      expect(e).toBeInstanceOf(TransactionCancelledError);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await runningCount('SELECT SLEEP(9)')).toBe(0);
      // The KILL went out on a side connection built from the pool's settings, cleanly.
      expect(warnings.mock.calls.flat().join('\n')).not.toMatch(/invalid configuration option/);
    } finally {
      warnings.mockRestore();
      await slow.close();
      await pool.end();
      await proxy.close();
    }
  });

  it('with a pool you pass in, a connection someone released mid-transaction is cleaned, not committed', async () => {
    const shared = mysql2.createPool({ uri: url, connectionLimit: 1 });
    const onShared = mysql({ pool: shared });
    try {
      const foreign = await shared.getConnection();
      await foreign.query('START TRANSACTION');
      await foreign.query(`UPDATE \`${t}\` SET v = 9999 WHERE id = 3`);
      foreign.release(); // released mid-transaction by code that is not txkit
      await onShared.transaction(async (tx) => {
        await tx.execute(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
      });
      expect(await values()).toEqual([101, 100, 100]);
    } finally {
      await onShared.close();
      await shared.end();
    }
  });

  it('acquire timeout: a starved pool fails with PoolTimeoutError instead of hanging', async () => {
    const tiny = mysql({ uri: url, connectionLimit: 1, acquireTimeoutMs: 200 });
    try {
      let release!: () => void;
      let holds!: () => void;
      const holdingConnection = new Promise<void>((r) => {
        holds = r;
      });
      const holding = tiny.transaction(
        () =>
          new Promise<void>((r) => {
            release = r;
            holds();
          }),
      );
      await holdingConnection;
      await expect(tiny.transaction(async () => {}, { propagation: 'requires_new' })).rejects.toBeInstanceOf(
        PoolTimeoutError,
      );
      // Autocommit statements borrow with the same timeout.
      await expect(tiny.query('SELECT 1')).rejects.toBeInstanceOf(PoolTimeoutError);
      release();
      await holding;
    } finally {
      await tiny.close();
    }
  });

  it('ordered locking: opposite-order transfers wait instead of deadlocking', async () => {
    // Deterministic interleaving: T1 holds both rows; T2 asks for them in the opposite order.
    let t2Thread = -1;
    let release!: () => void;
    const t1Holds = new Promise<void>((r) => {
      release = r;
    });
    let t1Locked!: () => void;
    const locked = new Promise<void>((r) => {
      t1Locked = r;
    });
    const t1 = db.transaction(async (tx) => {
      await tx.lockRows(t, [1, 2]);
      t1Locked();
      await t1Holds;
      await tx.execute(`UPDATE \`${t}\` SET v = v - 10 WHERE id = 1`);
      await tx.execute(`UPDATE \`${t}\` SET v = v + 10 WHERE id = 2`);
    });
    await locked;
    const t2 = db.transaction(async (tx) => {
      t2Thread = tx.threadId;
      const { rows } = await tx.lockRows<Row, number>(t, [2, 1]);
      await tx.execute(`UPDATE \`${t}\` SET v = v - 20 WHERE id = 2`);
      await tx.execute(`UPDATE \`${t}\` SET v = v + 20 WHERE id = 1`);
      return [...rows.keys()];
    });
    while (t2Thread < 0) await new Promise((r) => setTimeout(r, 5));
    await waitForLockWait(observer, t2Thread);
    release();
    await t1;
    expect(await t2).toEqual([1, 2]);
    expect(await values()).toEqual([110, 90, 100]);

    // Under load: many opposite-order transfers at once, no retry, no deadlock.
    const transfers = Array.from({ length: 24 }, (_, i) => {
      const [from, to] = i % 2 === 0 ? [1, 2] : [2, 1];
      return db.transaction(async (tx) => {
        await tx.lockRows(t, [from, to]);
        await tx.execute(`UPDATE \`${t}\` SET v = v - 1 WHERE id = ?`, [from]);
        await tx.execute(`UPDATE \`${t}\` SET v = v + 1 WHERE id = ?`, [to]);
      });
    });
    const results = await Promise.allSettled(transfers);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const v = await values();
    expect(v[0]! + v[1]!).toBe(200);
  });

  it('lockRows: share mode, NOWAIT, missing rows, and bad identifiers', async () => {
    await db.transaction(async (tx) => {
      const { rows, missing } = await tx.lockRows<Row, number>(t, [3, 1, 3, 99], {
        mode: 'share',
        allowMissing: true,
      });
      expect([...rows.keys()]).toEqual([1, 3]);
      expect(missing).toEqual([99]);
      await expect(tx.lockRows(t, [98])).rejects.toBeInstanceOf(RowNotFoundError);
    });
    const a = await observer.getConnection();
    try {
      await a.query('START TRANSACTION');
      await a.query(`SELECT * FROM \`${t}\` WHERE id = 1 FOR UPDATE`);
      const err = await db
        .transaction(async (tx) => {
          await tx.lockRows(t, [1], { wait: 'nowait' });
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(LockNotAvailableError);
    } finally {
      await a.query('ROLLBACK');
      a.release();
    }
    await db.transaction(async (tx) => {
      for (const bad of ['acct; DROP TABLE x', 'a`b', 'x.y.z', '1abc']) {
        await expect(tx.lockRows(bad, [1])).rejects.toBeInstanceOf(InvalidIdentifierError);
      }
      await expect(tx.lockRows(t, [1], { keyColumn: 'id) OR (1=1' })).rejects.toBeInstanceOf(
        InvalidIdentifierError,
      );
    });
  });

  it('insertMany: one statement, validated names, first generated id', async () => {
    const log = `${t}_log`;
    await db.execute(
      `CREATE TABLE \`${log}\` (id INT AUTO_INCREMENT PRIMARY KEY, acct INT, amount DECIMAL(15,2))`,
    );
    try {
      const r = await db.transaction((tx) =>
        tx.insertMany(
          log,
          ['acct', 'amount'],
          [
            [1, '-100.00'],
            [2, '100.00'],
            [3, '0.01'],
          ],
        ),
      );
      expect(r).toEqual({ rowsAffected: 3, firstInsertId: 1 });
      expect(await db.query(`SELECT acct, amount FROM \`${log}\` ORDER BY id`)).toEqual([
        { acct: 1, amount: '-100.00' },
        { acct: 2, amount: '100.00' },
        { acct: 3, amount: '0.01' },
      ]);
      await db.transaction(async (tx) => {
        await expect(tx.insertMany(log, ['acct) VALUES (1); --'], [[1]])).rejects.toBeInstanceOf(
          InvalidIdentifierError,
        );
        await expect(tx.insertMany(log, ['acct', 'amount'], [[1]])).rejects.toThrow(
          /row 0 must be an array of 2/,
        );
        expect(await tx.insertMany(log, ['acct'], [])).toEqual({ rowsAffected: 0 });
      });
    } finally {
      await db.execute(`DROP TABLE IF EXISTS \`${log}\``);
    }
  });

  it('savepoints, and injection through savepoint names or raw SQL is refused', async () => {
    await db.transaction(async (tx) => {
      await tx.execute(`UPDATE \`${t}\` SET v = 1 WHERE id = 1`);
      const sp = await tx.savepoint('after_first');
      await tx.execute(`UPDATE \`${t}\` SET v = 2 WHERE id = 2`);
      await sp.rollback();
      await db.transaction(async (inner) => {
        await inner.execute(`UPDATE \`${t}\` SET v = 3 WHERE id = 3`);
      });
      for (const bad of ['x`; COMMIT; --', 'a b', "sp'1", '']) {
        await expect(tx.savepoint(bad)).rejects.toBeInstanceOf(InvalidIdentifierError);
      }
      for (const raw of [
        'COMMIT',
        'ROLLBACK',
        'START TRANSACTION',
        "XA START 'x'",
        'SET autocommit = 1',
        'SAVEPOINT s',
      ]) {
        await expect(tx.query(raw)).rejects.toBeInstanceOf(RawTransactionControlError);
      }
      await expect(tx.execute('CREATE TABLE should_not_exist (id INT)')).rejects.toBeInstanceOf(
        TransactionStateError,
      );
      await expect(tx.execute('SELECT ?', { a: 1 } as never)).rejects.toThrow(/array/);
    });
    expect(await values()).toEqual([1, 100, 3]);
    await expect(db.query('COMMIT')).rejects.toBeInstanceOf(RawTransactionControlError);
  });

  it("a transaction ended behind txkit's back (raw COMMIT allowed) is noticed from the status flag", async () => {
    const raw = mysql({ uri: url, connectionLimit: 1, allowRawTransactionControl: true });
    try {
      const err = await raw
        .transaction(async (tx) => {
          await tx.execute(`UPDATE \`${t}\` SET v = 7 WHERE id = 1`);
          await tx.execute('COMMIT'); // the server is now in autocommit
          return tx.execute(`UPDATE \`${t}\` SET v = 8 WHERE id = 2`);
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(TransactionAbortedError);
      expect(err.cause).toBeInstanceOf(TransactionStateError);
      // The raw COMMIT did commit the first write; the second one was never sent.
      expect(await values()).toEqual([7, 100, 100]);
    } finally {
      await raw.close();
    }
  });

  it('XA through the resource: prepare detaches the branch, then commitPrepared / listPrepared', async () => {
    const gid = `txk-${process.pid}-${Date.now()}`;
    const handle = await db.resource.begin({
      txId: 'xa1',
      readOnly: false,
      deferrable: false,
      suspended: [],
      extra: { xa: gid },
    });
    await handle.execute(`UPDATE \`${t}\` SET v = 42 WHERE id = 1`);
    await handle.prepare?.(gid);
    expect((await db.resource.listPrepared(gid)).map((p) => p.gid)).toEqual([gid]);
    expect(await values()).toEqual([100, 100, 100]);
    await db.resource.commitPrepared(gid);
    expect(await values()).toEqual([42, 100, 100]);
    expect(await db.resource.listPrepared(gid)).toEqual([]);
    await expect(db.transaction(async () => {}, { xa: "x'; DROP TABLE t; --" })).rejects.toThrow(
      /A-Z a-z 0-9/,
    );
  });
});
