/**
 * With `innodb_rollback_on_timeout=ON` (a startup option) a lock wait timeout rolls back
 * the whole transaction, not just the statement: the transaction must then refuse later
 * statements instead of letting them autocommit. Runs on its own private instance.
 */
import mysql2 from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError, TransactionAbortedError } from '../../src/core/errors.js';
import { type MysqlDatabase, mysql } from '../../src/sql/mysql/index.js';
import {
  canStartPrivateInstance,
  type PrivateInstance,
  startPrivateInstance,
} from '../support/mysql-server.js';

describe.skipIf(!canStartPrivateInstance())('innodb_rollback_on_timeout=ON', () => {
  let server: PrivateInstance;
  let db: MysqlDatabase;
  let other: mysql2.Connection;

  beforeAll(async () => {
    server = await startPrivateInstance({ extraArgs: ['--innodb-rollback-on-timeout=ON'] });
    const u = server.env.TXKIT_MYSQL_URL as string;
    db = mysql({ uri: u, connectionLimit: 2 });
    other = await mysql2.createConnection(u);
    await db.execute('CREATE TABLE r (id INT PRIMARY KEY, v INT NOT NULL)');
    await db.execute('INSERT INTO r VALUES (1, 0), (2, 0)');
  }, 60_000);
  afterAll(async () => {
    await other?.end();
    await db?.close();
    await server?.stop();
  });

  it('a 1205 ends the transaction: later writes are refused and nothing is committed', async () => {
    expect((await db.serverLockSettings()).innodbRollbackOnTimeout).toBe(true);
    await other.query('START TRANSACTION');
    await other.query('UPDATE r SET v = 1 WHERE id = 2');
    let timeout: unknown;
    let later: unknown;
    const outcome = await db
      .transaction(
        async (tx) => {
          await tx.execute('UPDATE r SET v = 10 WHERE id = 1');
          timeout = await tx.execute('UPDATE r SET v = 10 WHERE id = 2').catch((e) => e);
          later = await tx.execute('UPDATE r SET v = 20 WHERE id = 1').catch((e) => e);
        },
        { lockWaitTimeoutSec: 1 },
      )
      .catch((e) => e);
    await other.query('ROLLBACK');
    expect(timeout).toBeInstanceOf(LockTimeoutError);
    expect((timeout as Error).message).toMatch(/whole transaction/);
    expect(later).toBeInstanceOf(TransactionAbortedError);
    expect(outcome).toBeInstanceOf(Error);
    const [rows] = (await other.query('SELECT id, v FROM r ORDER BY id')) as unknown as [unknown[]];
    expect(rows).toEqual([
      { id: 1, v: 0 },
      { id: 2, v: 0 },
    ]);
  });
});
