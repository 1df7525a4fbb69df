import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckViolationError,
  CommitOutcomeUnknownError,
  ConnectionLostError,
  DatabaseError,
  DeadlockError,
  ForeignKeyViolationError,
  isRetryable,
  LockTimeoutError,
  NotNullViolationError,
  ReadOnlyTransactionError,
  SavepointInvalidError,
  StatementTimeoutError,
  UniqueViolationError,
} from '../../src/core/errors.js';
import {
  AuthError,
  classificationOf,
  classifyMysqlError,
  InsufficientPrivilegeError,
  LockNotAvailableError,
  QueryInterruptedError,
  TransactionStateError,
  toTxkitError,
} from '../../src/sql/mysql/errors.js';
import { accountsTable, caught, connect, noProcessUrl, tableName, url, waitForLockWait } from './helpers.js';

describe('classifyMysqlError without a server', () => {
  it('classifies by errno and flavour, never by mysql2 code string', () => {
    // 4025 with MySQL's label but MariaDB's SQLSTATE is a CHECK violation on MariaDB.
    const check = { errno: 4025, code: 'ER_INNODB_AUTOEXTEND_SIZE_OUT_OF_RANGE', sqlState: '23000' };
    expect(classifyMysqlError(check, { flavor: 'mariadb' }).kind).toBe('check_constraint');
    expect(classifyMysqlError({ ...check, sqlState: 'HY000' }, { flavor: 'mysql' }).kind).toBe('other');
    expect(classifyMysqlError({ errno: 3819, sqlState: 'HY000' }, { flavor: 'mysql' }).kind).toBe(
      'check_constraint',
    );
    expect(classifyMysqlError({ errno: 3572, sqlState: 'HY000' }, { flavor: 'mysql' }).kind).toBe(
      'lock_not_available',
    );
    expect(classifyMysqlError({ errno: 3024, sqlState: 'HY000' }, { flavor: 'mysql' }).kind).toBe(
      'statement_timeout',
    );
    // A message that says "deadlock" is not a deadlock.
    expect(classifyMysqlError({ errno: 1064, sqlState: '42000', sqlMessage: 'deadlock' }).kind).toBe('other');
  });

  it('1205 scope follows innodb_rollback_on_timeout and NOWAIT', () => {
    const e = { errno: 1205, sqlState: 'HY000' };
    expect(classifyMysqlError(e).scope).toBe('statement');
    expect(classifyMysqlError(e, { rollbackOnTimeout: true }).scope).toBe('transaction');
    expect(classifyMysqlError(e, { nowait: true }).kind).toBe('lock_not_available');
    expect(toTxkitError(e, { nowait: true })).toBeInstanceOf(LockNotAvailableError);
  });

  it('connection errors depend on the phase: connect retries, commit is unknown', () => {
    const reset = { code: 'ECONNRESET', errno: -104, fatal: true };
    expect(classifyMysqlError(reset, { phase: 'statement' })).toMatchObject({
      kind: 'connection_lost',
      retryable: true,
    });
    expect(classifyMysqlError(reset, { phase: 'autocommit' })).toMatchObject({
      kind: 'connection_lost',
      retryable: false,
    });
    expect(classifyMysqlError(reset, { phase: 'commit' })).toMatchObject({
      kind: 'commit_outcome_unknown',
      commitOutcomeUnknown: true,
    });
    expect(toTxkitError(reset, { phase: 'commit' })).toBeInstanceOf(CommitOutcomeUnknownError);
    for (const code of ['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'EAI_AGAIN']) {
      expect(classifyMysqlError({ code, fatal: true }, { phase: 'connect' })).toMatchObject({
        kind: 'connect_failed',
        retryable: true,
      });
    }
    expect(classifyMysqlError({ code: 'ENOTFOUND', fatal: true }, { phase: 'connect' }).retryable).toBe(
      false,
    );
    // "Can't add new command when connection is in closed state": fatal, no code.
    expect(classifyMysqlError({ fatal: true, message: 'closed' }).kind).toBe('connection_lost');
    expect(classifyMysqlError({ code: 'PROTOCOL_SEQUENCE_TIMEOUT', fatal: true }).scope).toBe('connection');
    expect(classifyMysqlError({ errno: 1927, sqlState: '70100' }).kind).toBe('connection_lost');
    expect(classifyMysqlError({ errno: 1040, sqlState: '08004' }, { phase: 'connect' }).retryable).toBe(true);
    expect(classifyMysqlError(new Error('plain')).kind).toBe('other');
  });

  it('keeps the driver error as cause, errno and SQLSTATE, and the classification', () => {
    const raw = Object.assign(new Error('x'), {
      errno: 1213,
      sqlState: '40001',
      code: 'ER_LOCK_DEADLOCK',
      sql: 'UPDATE t',
    });
    const e = toTxkitError(raw);
    expect(e).toBeInstanceOf(DeadlockError);
    expect(e.cause).toBe(raw);
    expect(e.driverCode).toBe(1213);
    expect(e.sqlState).toBe('40001');
    expect(e.detail).toBe('UPDATE t');
    expect(classificationOf(e)?.scope).toBe('transaction');
    expect(toTxkitError(e)).toBe(e);
    expect(classifyMysqlError(e).kind).toBe('deadlock');
  });
});

describe.skipIf(!url)('classification of real MariaDB errors', () => {
  let a: mysql.Connection;
  let b: mysql.Connection;
  const t = tableName('errs');
  const child = `${t}_c`;
  const flavor = 'mariadb' as const;

  beforeAll(async () => {
    a = await connect();
    b = await connect();
    await accountsTable(a, t, 2);
    await a.query(`DROP TABLE IF EXISTS \`${child}\``);
    await a.query(
      `CREATE TABLE \`${child}\` (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES \`${t}\`(id))`,
    );
    await a.query(`INSERT INTO \`${child}\` VALUES (1, 1)`);
  });
  afterAll(async () => {
    await a?.query(`DROP TABLE IF EXISTS \`${child}\`, \`${t}\``);
    await a?.end();
    await b?.end();
  });

  const real = async (p: () => Promise<unknown>) => toTxkitError(await caught(p), { flavor });

  it('constraints: 1062, 1452, 1451, 4025, 1048', async () => {
    expect(await real(() => a.query(`INSERT INTO \`${t}\` VALUES (1, 1)`))).toBeInstanceOf(
      UniqueViolationError,
    );
    expect(await real(() => a.query(`INSERT INTO \`${child}\` VALUES (2, 99)`))).toBeInstanceOf(
      ForeignKeyViolationError,
    );
    expect(await real(() => a.query(`DELETE FROM \`${t}\` WHERE id = 1`))).toBeInstanceOf(
      ForeignKeyViolationError,
    );
    const check = await real(() => a.query(`UPDATE \`${t}\` SET v = -1 WHERE id = 2`));
    expect(check).toBeInstanceOf(CheckViolationError);
    expect(check.driverCode).toBe(4025);
    expect(await real(() => a.query(`INSERT INTO \`${t}\` VALUES (NULL, 1)`))).toBeInstanceOf(
      NotNullViolationError,
    );
  });

  it('deadlock 1213 between two transactions is retryable and ends the transaction', async () => {
    await a.query('START TRANSACTION');
    await b.query('START TRANSACTION');
    await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
    await b.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 2`);
    const bWaits = b.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`).then(
      () => null,
      (e) => e,
    );
    await waitForLockWait(a, b.threadId);
    const aErr = await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 2`).then(
      () => null,
      (e) => e,
    );
    const bErr = await bWaits;
    const victims = [aErr, bErr].filter((e) => e !== null);
    expect(victims).toHaveLength(1);
    const err = toTxkitError(victims[0], { flavor });
    expect(err).toBeInstanceOf(DeadlockError);
    expect(err.sqlState).toBe('40001');
    expect(isRetryable(err)).toBe(true);
    expect(classificationOf(err)?.scope).toBe('transaction');
    await a.query('ROLLBACK');
    await b.query('ROLLBACK');
  });

  it('lock wait timeout 1205 rolls back only the statement; NOWAIT is lock_not_available', async () => {
    await a.query('START TRANSACTION');
    await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`);
    await b.query('SET SESSION innodb_lock_wait_timeout = 1');
    await b.query('START TRANSACTION');
    const err = await real(() => b.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`));
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(isRetryable(err)).toBe(false);
    const [[status]] = (await b.query('SELECT @@in_transaction AS t')) as any;
    expect(status.t).toBe(1);
    const nowait = toTxkitError(
      await caught(() => b.query(`SELECT * FROM \`${t}\` WHERE id = 1 FOR UPDATE NOWAIT`)),
      {
        flavor,
        nowait: true,
      },
    );
    expect(nowait).toBeInstanceOf(LockNotAvailableError);
    await b.query('ROLLBACK');
    await a.query('ROLLBACK');
    await b.query('SET SESSION innodb_lock_wait_timeout = DEFAULT');
  });

  it('statement timeout 1969 (no mysql2 code), KILL QUERY 1317, read only 1792, 1568, 1305', async () => {
    const timeout = await real(() => a.query('SET STATEMENT max_statement_time=0.05 FOR SELECT SLEEP(2)'));
    expect(timeout).toBeInstanceOf(StatementTimeoutError);
    expect(timeout.driverCode).toBe(1969);

    const sleeping = b.query('SELECT SLEEP(5)').then(
      () => null,
      (e) => e,
    );
    await waitUntilRunning(a, b.threadId);
    await a.query(`KILL QUERY ${b.threadId}`);
    expect(toTxkitError(await sleeping, { flavor })).toBeInstanceOf(QueryInterruptedError);

    await a.query('START TRANSACTION READ ONLY');
    expect(await real(() => a.query(`UPDATE \`${t}\` SET v = 5 WHERE id = 2`))).toBeInstanceOf(
      ReadOnlyTransactionError,
    );
    expect(await real(() => a.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED'))).toBeInstanceOf(
      TransactionStateError,
    );
    await a.query('ROLLBACK');
    expect(await real(() => a.query('ROLLBACK TO SAVEPOINT nope'))).toBeInstanceOf(SavepointInvalidError);
    expect(await real(() => a.query('SELECT * FROM no_such_table_x'))).toBeInstanceOf(DatabaseError);
  });

  it.skipIf(!noProcessUrl)('1227 without PROCESS and 1045 with a bad password', async () => {
    const np = await connect(noProcessUrl);
    try {
      const err = await real(() => np.query('SHOW ENGINE INNODB STATUS'));
      expect(err).toBeInstanceOf(InsufficientPrivilegeError);
      expect(err.driverCode).toBe(1227);
    } finally {
      await np.end();
    }
    const bad = new URL(url as string);
    bad.password = 'wrong';
    const auth = toTxkitError(await caught(() => connect(bad.toString())), { flavor, phase: 'connect' });
    expect(auth).toBeInstanceOf(AuthError);
  });

  it('connection errors as Node reports them: refused, killed, closed', async () => {
    const refused = new URL(url as string);
    refused.port = '1';
    const r = toTxkitError(await caught(() => connect(refused.toString())), { flavor, phase: 'connect' });
    expect(r).toBeInstanceOf(ConnectionLostError);
    expect(r.driverCode).toBe('ECONNREFUSED');
    expect(r.retryable).toBe(true);

    const victim = await connect();
    victim.on('error', () => {}); // the kill also surfaces as a connection 'error' event
    const pending = victim.query('SELECT SLEEP(5)').then(
      () => undefined,
      (e: unknown) => e,
    );
    await waitUntilRunning(a, victim.threadId);
    await a.query(`KILL CONNECTION ${victim.threadId}`);
    const killed = await pending;
    const lost = toTxkitError(killed, { flavor, phase: 'statement' });
    expect(lost).toBeInstanceOf(ConnectionLostError);
    expect(classificationOf(lost)?.scope).toBe('connection');
    const closed = toTxkitError(await caught(() => victim.query('SELECT 1')), { flavor, phase: 'commit' });
    expect(closed).toBeInstanceOf(CommitOutcomeUnknownError);
    victim.destroy();
  });
});

async function waitUntilRunning(observer: mysql.Connection, threadId: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const [rows] = (await observer.query(
      "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'User sleep'",
      [threadId],
    )) as any;
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`thread ${threadId} never started sleeping`);
}
