import { describe, expect, it } from 'vitest';
import {
  CheckViolationError,
  ForeignKeyViolationError,
  RawTransactionControlError,
  TransactionClosedError,
  TransactionRolledBackError,
  type TxkitError,
  UniqueViolationError,
} from '../../src/index.js';
import { sqlite } from '../../src/sql/sqlite/index.js';
import { accounts, balances, openDb, tempDir } from './helpers.js';

describe('db.transaction on SQLite', () => {
  it('rolls back an atomic transfer that fails midway and rethrows the original error', async () => {
    const db = openDb();
    await accounts(db);
    const boom = new Error('系统异常,转账失败');
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('UPDATE accounts SET balance = balance - 100 WHERE id = 1');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await balances(db)).toEqual([1000, 500]);
  });

  it('rolls back when the callback throws synchronously', async () => {
    const db = openDb();
    await accounts(db);
    await expect(
      db.transaction((() => {
        throw new Error('sync');
      }) as never),
    ).rejects.toThrow('sync');
    expect(db.metrics().rolledBack).toBe(1);
    await db.transaction(async (tx) => tx.execute('UPDATE accounts SET balance = 1 WHERE id = 1'));
    expect(await balances(db)).toEqual([1, 500]);
  });

  it('commits only when the callback resolves, and returns its value', async () => {
    const db = openDb();
    await accounts(db);
    const value = await db.transaction(async (tx) => {
      await tx.execute('UPDATE accounts SET balance = balance - 100 WHERE id = 1');
      await tx.execute('UPDATE accounts SET balance = balance + 100 WHERE id = 2');
      return 'done';
    });
    expect(value).toBe('done');
    expect(await balances(db)).toEqual([900, 600]);
  });

  it('surfaces a CHECK violation as a typed error with the balance unchanged', async () => {
    const db = openDb();
    await accounts(db);
    const err = await db
      .transaction(async (tx) => {
        await tx.execute('UPDATE accounts SET balance = balance - 150 WHERE id = 2');
        await tx.execute('UPDATE accounts SET balance = balance - 1000 WHERE id = 2');
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckViolationError);
    expect((err as TxkitError).code).toBe('E_CHECK');
    expect((err as TxkitError).retryable).toBe(false);
    expect((err as TxkitError).driverCode).toBe('SQLITE_CONSTRAINT_CHECK');
    expect(await balances(db)).toEqual([1000, 500]);
  });

  it('keeps the transaction usable after a caught statement error (SQLite undoes only the statement)', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE u (email TEXT PRIMARY KEY)');
    await db.transaction(async (tx) => {
      await tx.execute("INSERT INTO u VALUES ('a@x')");
      await expect(tx.execute("INSERT INTO u VALUES ('a@x')")).rejects.toBeInstanceOf(UniqueViolationError);
      expect(tx.state).toBe('active');
      await tx.execute("INSERT INTO u VALUES ('b@x')");
    });
    expect(await db.query('SELECT email FROM u ORDER BY email')).toEqual([
      { email: 'a@x' },
      { email: 'b@x' },
    ]);
  });

  it('treats a statement that makes SQLite end the transaction as aborting it: nothing commits', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER UNIQUE ON CONFLICT ROLLBACK)');
    const err = await db
      .transaction(async (tx) => {
        await tx.execute('INSERT INTO t VALUES (1)');
        await tx.execute('INSERT INTO t VALUES (1)').catch(() => {});
        expect(tx.state).toBe('aborted');
        await expect(tx.execute('INSERT INTO t VALUES (2)')).rejects.toMatchObject({ code: 'E_TX_ABORTED' });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionRolledBackError);
    expect(await db.query('SELECT * FROM t')).toEqual([]);
  });

  it('a statement started in the same tick as one that made SQLite end the transaction is refused, not autocommitted', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER UNIQUE ON CONFLICT ROLLBACK)');
    await db.execute('CREATE TABLE log (msg TEXT)');
    const err = await db
      .transaction(async (tx) => {
        await tx.execute('INSERT INTO t VALUES (1)');
        await Promise.all([
          tx.execute('INSERT INTO t VALUES (1)'),
          tx.execute("INSERT INTO log VALUES ('x')"),
        ]);
      })
      .catch((e: unknown) => e);
    // Promise.all reports whichever rejection it sees first: the duplicate, or the refusal.
    expect(['E_UNIQUE', 'E_TX_ABORTED']).toContain((err as TxkitError).code);
    // Without a transaction the second INSERT would have run in autocommit mode and stayed.
    expect(await db.query('SELECT * FROM log')).toEqual([]);
    expect(await db.query('SELECT * FROM t')).toEqual([]);
  });

  it('refuses every call on a finished transaction with E_TX_CLOSED', async () => {
    const db = openDb();
    await accounts(db);
    let captured: any;
    await db.transaction(async (tx) => {
      captured = tx;
    });
    expect(captured.state).toBe('committed');
    await expect(captured.query('SELECT 1')).rejects.toBeInstanceOf(TransactionClosedError);
    await expect(captured.execute('UPDATE accounts SET balance = 0')).rejects.toMatchObject({
      code: 'E_TX_CLOSED',
    });
    await expect(captured.savepoint()).rejects.toMatchObject({ code: 'E_TX_CLOSED' });
    expect(() => captured.afterCommit(() => {})).toThrow(TransactionClosedError);
    expect(() => captured.setRollbackOnly()).toThrow(TransactionClosedError);
    expect(await balances(db)).toEqual([1000, 500]);
  });

  it('awaits statements still pending when the callback resolves, and rolls back if one failed', async () => {
    const db = openDb();
    await accounts(db);
    await db.transaction(async (tx) => {
      void tx.execute('UPDATE accounts SET balance = balance - 1 WHERE id = 1'); // not awaited
    });
    expect(await balances(db)).toEqual([999, 500]);
    const err = await db
      .transaction(async (tx) => {
        void tx.execute('UPDATE accounts SET balance = 7 WHERE id = 1');
        void tx.execute('UPDATE accounts SET balance = -1 WHERE id = 2'); // fails, nobody awaits it
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckViolationError);
    expect(await balances(db)).toEqual([999, 500]);
  });

  it('rejects raw transaction control sent as a statement', async () => {
    const db = openDb();
    for (const sql of [
      'COMMIT',
      'begin immediate',
      'ROLLBACK',
      'SAVEPOINT x',
      'RELEASE x',
      'END',
      'SELECT 1; COMMIT',
    ]) {
      await expect(db.execute(sql)).rejects.toBeInstanceOf(RawTransactionControlError);
      await expect(db.transaction((tx) => tx.query(sql))).rejects.toMatchObject({ code: 'E_RAW_TX_CONTROL' });
    }
    // ... but a trigger body's BEGIN … END is not transaction control.
    await db.execute('CREATE TABLE a (v INTEGER)');
    await db.execute('CREATE TABLE b (v INTEGER)');
    await db.execute('CREATE TRIGGER a_to_b AFTER INSERT ON a BEGIN INSERT INTO b VALUES (NEW.v); END');
    await db.execute('INSERT INTO a VALUES (3)');
    expect(await db.query('SELECT v FROM b')).toEqual([{ v: 3 }]);
  });

  it('returns rows affected and the last inserted id, also from INSERT … RETURNING', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE dept (id INTEGER PRIMARY KEY, name TEXT)');
    await db.execute(
      'CREATE TABLE emp (id INTEGER PRIMARY KEY, dept INTEGER REFERENCES dept(id), name TEXT, salary INTEGER)',
    );
    const { total, count } = await db.transaction(async (tx) => {
      const d = await tx.execute('INSERT INTO dept (name) VALUES (?)', ['技术部']);
      for (const [name, salary] of [
        ['张三', 8000],
        ['李四', 7500],
        ['王五', 9000],
      ] as const) {
        const r = await tx.execute('INSERT INTO emp (dept, name, salary) VALUES (?, ?, ?)', [
          d.lastInsertId,
          name,
          salary,
        ]);
        expect(r.rowsAffected).toBe(1);
      }
      const [row] = await tx.query<{ total: number; count: number }>(
        'SELECT sum(salary) AS total, count(*) AS count FROM emp WHERE dept = ?',
        [d.lastInsertId],
      );
      return row!;
    });
    expect({ total, count }).toEqual({ total: 24500, count: 3 });
    const r = await db.execute('UPDATE emp SET salary = salary + 1 WHERE salary > ?', [7600]);
    expect(r.rowsAffected).toBe(2);
    const ret = await db.execute('DELETE FROM emp WHERE salary > 8500 RETURNING id');
    expect(ret.rowsAffected).toBe(1);
  });

  it('enforces foreign keys, including a deferred violation that surfaces at COMMIT with nothing persisted', async () => {
    const db = openDb();
    expect(db.effective.foreignKeys).toBe(true);
    await db.execute('CREATE TABLE p (id INTEGER PRIMARY KEY)');
    await db.execute('CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)');
    const err = await db
      .transaction(async (tx) => {
        await tx.execute('INSERT INTO c VALUES (42)'); // fine until COMMIT
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForeignKeyViolationError);
    expect(await db.query('SELECT * FROM c')).toEqual([]);
    expect(db.inTransaction).toBe(false);
    await db.transaction((tx) => tx.execute('INSERT INTO p VALUES (1)'));
  });

  it('reports the isolation SQLite really gives (serializable) and rejects lower levels with strictIsolation', async () => {
    const db = openDb();
    const level = await db.transaction(async (tx) => tx.isolation, { isolation: 'read committed' });
    expect(level).toBe('serializable');
    expect(db.capabilities.isolation['read uncommitted'].effective).toBe('serializable');
    expect(db.capabilities.isolation['read committed'].prevents).toContain('write_skew');
    const strict = openDb({ strictIsolation: true });
    await expect(strict.transaction(async () => {}, { isolation: 'read committed' })).rejects.toMatchObject({
      code: 'E_UNSUPPORTED',
    });
    await strict.transaction(async () => {}, { isolation: 'serializable' });
  });

  it('refuses writes in a readOnly transaction and leaves the writer writable afterwards', async () => {
    const db = openDb();
    await accounts(db);
    await db.transaction(
      async (tx) => {
        expect(tx.readOnly).toBe(true);
        expect(await tx.query('SELECT count(*) AS n FROM accounts')).toEqual([{ n: 2 }]);
        await expect(tx.execute('UPDATE accounts SET balance = 0')).rejects.toMatchObject({
          code: 'E_READ_ONLY',
        });
      },
      { readOnly: true },
    );
    await db.execute('UPDATE accounts SET balance = 1 WHERE id = 1');
    expect(await balances(db)).toEqual([1, 500]);
  });

  it('survives close and reopen: committed work is durable (WAL + synchronous FULL by default)', async () => {
    const dir = tempDir();
    const first = openDb({}, dir);
    expect(first.effective).toMatchObject({ journalMode: 'wal', synchronous: 2 });
    await first.execute('CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT NOT NULL)');
    for (const msg of ['系统启动', '用户登录成功', '关键数据更新', '业务流程完成']) {
      await first.transaction((tx) => tx.execute('INSERT INTO log (msg) VALUES (?)', [msg]));
    }
    await first.close();
    const second = sqlite({ filename: `${dir}/test.db` });
    const rows = await second.query<{ msg: string }>('SELECT msg FROM log ORDER BY id');
    await second.close();
    expect(rows.map((r) => r.msg)).toEqual(['系统启动', '用户登录成功', '关键数据更新', '业务流程完成']);
  });

  it('rejects calls on a closed database', async () => {
    const db = openDb();
    await db.close();
    await expect(db.transaction(async () => {})).rejects.toMatchObject({ code: 'E_CLOSED' });
    await expect(db.query('SELECT 1')).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});

describe('manual db.begin()', () => {
  it('commits and rolls back explicitly; a finished one refuses calls', async () => {
    const db = openDb();
    await accounts(db);
    const tx = await db.begin();
    await tx.execute('UPDATE accounts SET balance = 0 WHERE id = 1');
    await tx.commit();
    await expect(tx.commit()).rejects.toBeInstanceOf(TransactionClosedError);
    const tx2 = await db.begin();
    await tx2.execute('UPDATE accounts SET balance = 0 WHERE id = 2');
    await tx2.rollback();
    await expect(tx2.execute('SELECT 1')).rejects.toMatchObject({ code: 'E_TX_CLOSED' });
    expect(await balances(db)).toEqual([0, 500]);
  });

  it('rolls back on asyncDispose when neither commit nor rollback was called', async () => {
    const db = openDb();
    await accounts(db);
    {
      await using tx = await db.begin();
      await tx.execute('UPDATE accounts SET balance = 0');
    }
    expect(await balances(db)).toEqual([1000, 500]);
    {
      await using tx = await db.begin();
      await tx.execute('UPDATE accounts SET balance = 3 WHERE id = 1');
      await tx.commit();
    }
    expect(await balances(db)).toEqual([3, 500]);
  });

  it('rolls back when its deadline passes; later calls report the timeout', async () => {
    const db = openDb();
    await accounts(db);
    const tx = await db.begin({ timeoutMs: 50 });
    await tx.execute('UPDATE accounts SET balance = 0');
    const rolledBack = new Promise((r) => db.on('rollback', r));
    await rolledBack;
    expect(tx.state).toBe('rolled_back');
    await expect(tx.commit()).rejects.toMatchObject({ code: 'E_TX_TIMEOUT' });
    await expect(tx.execute('SELECT 1')).rejects.toMatchObject({ code: 'E_TX_TIMEOUT' });
    expect(await balances(db)).toEqual([1000, 500]);
  });

  it('rejects retry and propagation, which need a callback', async () => {
    const db = openDb();
    await expect(db.begin({ retry: true })).rejects.toMatchObject({ code: 'E_INVALID_OPTION' });
    await expect(db.begin({ propagation: 'required' })).rejects.toMatchObject({ code: 'E_INVALID_OPTION' });
  });
});
