/**
 * SQLSTATE classification, checked against errors the real server produces.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckViolationError,
  CommitOutcomeUnknownError,
  ConnectionLostError,
  DeadlockError,
  ForeignKeyViolationError,
  IdleInTransactionTimeoutError,
  isRetryable,
  LockTimeoutError,
  NotifyPayloadTooLargeError,
  NotNullViolationError,
  PrepareFailedError,
  ReadOnlyTransactionError,
  SavepointInvalidError,
  SerializationFailureError,
  StatementTimeoutError,
  TransactionAbortedError,
  TxkitError,
  UniqueViolationError,
} from '../../src/core/errors.js';
import { classifyPgError, isConnectionError } from '../../src/sql/postgres/errors.js';
import {
  connect,
  createTestDatabase,
  PG_URL,
  rejection,
  type TestDatabase,
  waitUntilBlocked,
} from './helpers.js';

describe.skipIf(!PG_URL)('postgres error classification (real server errors)', () => {
  let db: TestDatabase;
  let a: pg.Client;
  let b: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase('errors');
    a = await connect(db.url);
    b = await connect(db.url);
    await a.query(`
      CREATE TABLE parent (id int PRIMARY KEY);
      CREATE TABLE child (
        id int PRIMARY KEY,
        parent_id int CONSTRAINT child_parent_fk REFERENCES parent(id),
        email text NOT NULL CONSTRAINT child_email_key UNIQUE,
        balance int CONSTRAINT child_balance_check CHECK (balance >= 0)
      );
      INSERT INTO parent VALUES (1);
      INSERT INTO child VALUES (1, 1, 'a@x', 10), (2, 1, 'b@x', 10);
    `);
  });
  afterAll(async () => {
    await a?.end();
    await b?.end();
    await db?.drop();
  });

  const classified = async (p: Promise<unknown>, phase?: Parameters<typeof classifyPgError>[1]) =>
    classifyPgError(await rejection(p), phase);

  it('23505 unique violation carries constraint, table and detail', async () => {
    const e = await classified(a.query("INSERT INTO child VALUES (3, 1, 'a@x', 1)"));
    expect(e).toBeInstanceOf(UniqueViolationError);
    expect(e).toMatchObject({
      code: 'E_UNIQUE',
      sqlState: '23505',
      constraint: 'child_email_key',
      table: 'child',
    });
    expect(e.detail).toContain('a@x');
    expect(e.retryable).toBe(false);
    expect((e.cause as pg.DatabaseError).code).toBe('23505');
  });

  it('23503 foreign key, 23514 check, 23502 not null', async () => {
    const fk = await classified(a.query("INSERT INTO child VALUES (3, 99, 'c@x', 1)"));
    expect(fk).toBeInstanceOf(ForeignKeyViolationError);
    expect(fk.constraint).toBe('child_parent_fk');
    const check = await classified(a.query('UPDATE child SET balance = -1 WHERE id = 1'));
    expect(check).toBeInstanceOf(CheckViolationError);
    expect(check.constraint).toBe('child_balance_check');
    const nn = await classified(a.query('INSERT INTO child VALUES (3, 1, NULL, 1)'));
    expect(nn).toBeInstanceOf(NotNullViolationError);
    expect(nn.column).toBe('email');
  });

  it('40001 serialization failure is retryable', async () => {
    await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await a.query('SELECT balance FROM child WHERE id = 1');
    await b.query('UPDATE child SET balance = balance + 1 WHERE id = 1');
    const e = await classified(a.query('UPDATE child SET balance = balance + 1 WHERE id = 1'));
    await a.query('ROLLBACK');
    expect(e).toBeInstanceOf(SerializationFailureError);
    expect(e.sqlState).toBe('40001');
    expect(isRetryable(e)).toBe(true);
  });

  it('40P01 deadlock is retryable and hits exactly one side', async () => {
    await a.query("SET deadlock_timeout = '50ms'");
    await b.query("SET deadlock_timeout = '50ms'");
    await a.query('BEGIN');
    await b.query('BEGIN');
    await a.query('UPDATE child SET balance = balance WHERE id = 1');
    await b.query('UPDATE child SET balance = balance WHERE id = 2');
    const pa = a.query('UPDATE child SET balance = balance WHERE id = 2').then(
      () => null,
      (e: unknown) => e,
    );
    const aPid = (a as unknown as { processID: number }).processID;
    await waitUntilBlocked(b, aPid);
    const pb = b.query('UPDATE child SET balance = balance WHERE id = 1').then(
      () => null,
      (e: unknown) => e,
    );
    const results = await Promise.all([pa, pb]);
    await a.query('ROLLBACK');
    await b.query('ROLLBACK');
    const errors = results.filter((r) => r !== null).map((r) => classifyPgError(r));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(DeadlockError);
    expect(errors[0]!.retryable).toBe(true);
  });

  it('55P03 lock timeout (and NOWAIT), 57014 statement timeout, 25P02 aborted', async () => {
    await a.query('BEGIN');
    await a.query('SELECT * FROM child WHERE id = 1 FOR UPDATE');
    const nowait = await classified(b.query('SELECT * FROM child WHERE id = 1 FOR UPDATE NOWAIT'));
    expect(nowait).toBeInstanceOf(LockTimeoutError);
    await b.query('BEGIN');
    await b.query("SELECT set_config('lock_timeout', '30', true)");
    const lt = await classified(b.query('UPDATE child SET balance = 0 WHERE id = 1'));
    expect(lt).toBeInstanceOf(LockTimeoutError);
    expect(lt.sqlState).toBe('55P03');
    const aborted = await classified(b.query('SELECT 1'));
    expect(aborted).toBeInstanceOf(TransactionAbortedError);
    expect(aborted.sqlState).toBe('25P02');
    // COMMIT of an aborted transaction answers with a ROLLBACK tag, no error.
    const tag = await b.query('COMMIT');
    expect(tag.command).toBe('ROLLBACK');
    await a.query('ROLLBACK');
    const st = await classified(b.query("SET statement_timeout = '30ms'; SELECT pg_sleep(5)"));
    await b.query('SET statement_timeout = 0');
    expect(st).toBeInstanceOf(StatementTimeoutError);
    expect(st.sqlState).toBe('57014');
  });

  it('25006 read-only, 3B001 missing savepoint, 25P01 savepoint outside a transaction', async () => {
    await a.query('BEGIN READ ONLY');
    const ro = await classified(a.query('UPDATE child SET balance = 1'));
    await a.query('ROLLBACK');
    expect(ro).toBeInstanceOf(ReadOnlyTransactionError);
    await a.query('BEGIN');
    const sp = await classified(a.query('ROLLBACK TO SAVEPOINT nope'));
    await a.query('ROLLBACK');
    expect(sp).toBeInstanceOf(SavepointInvalidError);
    const outside = await classified(a.query('SAVEPOINT x'), { phase: 'savepoint' });
    expect(outside).toBeInstanceOf(SavepointInvalidError);
    expect(outside.sqlState).toBe('25P01');
  });

  it('22023 from pg_notify is NotifyPayloadTooLargeError in the notify phase', async () => {
    const e = await classified(a.query('SELECT pg_notify($1, $2)', ['ch', 'x'.repeat(8000)]), {
      phase: 'notify',
    });
    expect(e).toBeInstanceOf(NotifyPayloadTooLargeError);
    expect(e.sqlState).toBe('22023');
  });

  it('PREPARE after NOTIFY (0A000) and a duplicate gid (42710) are PrepareFailedError', async () => {
    await a.query('BEGIN');
    await a.query("SELECT pg_notify('ch', 'x')");
    const notified = await classified(a.query("PREPARE TRANSACTION 'errors-test-1'"), { phase: 'prepare' });
    await a.query('ROLLBACK');
    expect(notified).toBeInstanceOf(PrepareFailedError);
    expect(notified.sqlState).toBe('0A000');
    await a.query('BEGIN');
    await a.query("PREPARE TRANSACTION 'errors-test-dup'");
    await b.query('BEGIN');
    const dup = await classified(b.query("PREPARE TRANSACTION 'errors-test-dup'"), { phase: 'prepare' });
    await b.query('ROLLBACK');
    await a.query("ROLLBACK PREPARED 'errors-test-dup'");
    expect(dup).toBeInstanceOf(PrepareFailedError);
    expect(dup.sqlState).toBe('42710');
  });

  it('57P01 (pg_terminate_backend) is a lost connection; during COMMIT it is an unknown outcome', async () => {
    const victim = await connect(db.url);
    const pid = (victim as unknown as { processID: number }).processID;
    const pending = victim.query('SELECT pg_sleep(5)').then(
      () => null,
      (e: unknown) => e,
    );
    await a.query('SELECT pg_terminate_backend($1)', [pid]);
    const raw = await pending;
    expect(isConnectionError(raw)).toBe(true);
    const e = classifyPgError(raw, { phase: 'statement' });
    expect(e).toBeInstanceOf(ConnectionLostError);
    expect(e.sqlState).toBe('57P01');
    expect(e.retryable).toBe(false);
    expect(classifyPgError(raw, { phase: 'commit' })).toBeInstanceOf(CommitOutcomeUnknownError);
    // The client is unusable afterwards: an error without SQLSTATE, lost by context.
    const after = await rejection(victim.query('SELECT 1'));
    expect(classifyPgError(after, { connectionLost: true })).toBeInstanceOf(ConnectionLostError);
    await victim.end().catch(() => {});
  });

  it('25P03 idle-in-transaction timeout arrives as a FATAL on the error event', async () => {
    const victim = new pg.Client({ connectionString: db.url });
    const fatal = new Promise<unknown>((resolve) => victim.once('error', resolve));
    await victim.connect();
    await victim.query('BEGIN');
    await victim.query("SELECT set_config('idle_in_transaction_session_timeout', '30', true)");
    const e = classifyPgError(await fatal);
    expect(e).toBeInstanceOf(IdleInTransactionTimeoutError);
    expect(e.sqlState).toBe('25P03');
    await victim.end().catch(() => {});
  });

  it('a refused connection is ConnectionLostError, retryable when nothing was sent', async () => {
    // Port 1 on loopback: nothing listens there.
    const c = new pg.Client({ host: '127.0.0.1', port: 1, user: 'x' });
    const raw = await rejection(c.connect());
    const e = classifyPgError(raw, { phase: 'connect', nothingSent: true });
    expect(e).toBeInstanceOf(ConnectionLostError);
    expect(e.driverCode).toBe('ECONNREFUSED');
    expect(e.retryable).toBe(true);
  });

  it('returns TxkitErrors unchanged and wraps unknown errors as DatabaseError', async () => {
    const mine = new TxkitError('E_X', 'mine');
    expect(classifyPgError(mine)).toBe(mine);
    const syntax = await classified(a.query('SELEC 1'));
    expect(syntax.code).toBe('E_DATABASE');
    expect(syntax.sqlState).toBe('42601');
  });
});
