/**
 * PostgreSQL error classification: SQLSTATE (and, for socket failures, errno) → the txkit
 * taxonomy. Never by message text. Some SQLSTATEs are generic (55000, 22023, 0A000,
 * 42710) and only mean something specific in context (PREPARE TRANSACTION, pg_notify), so
 * the caller says what it was doing.
 */
import pg from 'pg';
import {
  CheckViolationError,
  CommitOutcomeUnknownError,
  ConnectionLostError,
  ConstraintViolationError,
  DatabaseError,
  DeadlockError,
  ForeignKeyViolationError,
  IdleInTransactionTimeoutError,
  LockTimeoutError,
  NotifyPayloadTooLargeError,
  NotNullViolationError,
  PreparedTransactionsDisabledError,
  PrepareFailedError,
  ReadOnlyTransactionError,
  SavepointInvalidError,
  SerializationFailureError,
  StatementTimeoutError,
  TransactionAbortedError,
  TransactionRolledBackError,
  TxkitError,
  type TxkitErrorInit,
  UniqueViolationError,
  UnsupportedFeatureError,
} from '../../core/errors.js';

/** What the adapter was doing when the error arrived. */
export type PgPhase =
  | 'statement'
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'prepare'
  | 'notify'
  | 'connect';

export interface PgErrorContext {
  phase?: PgPhase;
  /** The connection is known to be gone (the client emitted `error`/`end`). */
  connectionLost?: boolean;
  /** Nothing that could have written was sent on this connection yet (a retry is safe). */
  nothingSent?: boolean;
}

/** Socket-level errno codes that mean the connection to the server is gone or never came up. */
const CONNECTION_ERRNOS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOENT', // unix socket path missing
]);

/** SQLSTATEs of class 57P (operator intervention) that end the session. */
const SESSION_ENDING = new Set(['57P01', '57P02', '57P03', '57P04', '57P05']);

/** True for an error the server sent (it carries a SQLSTATE). */
export function isServerError(err: unknown): err is pg.DatabaseError {
  return (
    err instanceof pg.DatabaseError ||
    (isRecord(err) && typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) && 'severity' in err)
  );
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** SQLSTATE of a server error, or undefined. */
export function sqlStateOf(err: unknown): string | undefined {
  return isServerError(err) ? (err.code as string) : undefined;
}

/** True when `err` says the connection is unusable: class 08, 57P0x, a socket errno, or a FATAL. */
export function isConnectionError(err: unknown): boolean {
  if (!isRecord(err)) return false;
  const code = err.code;
  if (typeof code !== 'string') return false;
  if (isServerError(err)) {
    return code.startsWith('08') || SESSION_ENDING.has(code) || code === '25P03' || err.severity === 'FATAL';
  }
  return CONNECTION_ERRNOS.has(code);
}

function initFrom(err: unknown, extra: TxkitErrorInit = {}): TxkitErrorInit {
  const init: TxkitErrorInit = { cause: err, ...extra };
  if (isServerError(err)) {
    init.sqlState = err.code as string;
    init.driverCode = err.code as string;
    if (err.constraint) init.constraint = err.constraint;
    if (err.table) init.table = err.table;
    if (err.column) init.column = err.column;
    if (err.detail) init.detail = err.detail;
  } else if (isRecord(err) && typeof err.code === 'string') {
    init.driverCode = err.code;
  }
  return init;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Maps any error from `pg` to a {@link TxkitError}. Errors that already are TxkitErrors are
 * returned unchanged.
 *
 * @example
 * ```ts
 * try { await client.query(sql) } catch (e) { throw classifyPgError(e, { phase: 'statement' }) }
 * ```
 */
export function classifyPgError(err: unknown, ctx: PgErrorContext = {}): TxkitError {
  if (err instanceof TxkitError) return err;
  const msg = messageOf(err);
  const state = sqlStateOf(err);

  const lost = ctx.connectionLost === true || isConnectionError(err);
  if (lost && state !== '25P03') {
    if (ctx.phase === 'commit') {
      return new CommitOutcomeUnknownError(
        `the connection was lost after COMMIT was sent; the transaction may or may not have committed (${msg})`,
        initFrom(err),
      );
    }
    if (ctx.phase === 'prepare') {
      return new PrepareFailedError(
        `the connection was lost during PREPARE TRANSACTION; check pg_prepared_xacts for the gid (${msg})`,
        initFrom(err),
      );
    }
    return new ConnectionLostError(
      `connection to PostgreSQL lost: ${msg}`,
      initFrom(err, { retryable: ctx.nothingSent === true }),
    );
  }
  if (state === undefined) {
    return new DatabaseError(msg, initFrom(err));
  }

  switch (state) {
    case '23505':
      return new UniqueViolationError(msg, initFrom(err));
    case '23503':
      return new ForeignKeyViolationError(msg, initFrom(err));
    case '23514':
      return new CheckViolationError(msg, initFrom(err));
    case '23502':
      return new NotNullViolationError(msg, initFrom(err));
    case '40001':
      return new SerializationFailureError(msg, initFrom(err));
    case '40P01':
      return new DeadlockError(msg, initFrom(err));
    case '55P03':
      return new LockTimeoutError(msg, initFrom(err));
    case '57014':
      return new StatementTimeoutError(msg, initFrom(err));
    case '25P02':
      return new TransactionAbortedError(
        `${msg} (an earlier statement failed; roll back the transaction or to a savepoint)`,
        initFrom(err),
      );
    case '25P03':
      return new IdleInTransactionTimeoutError(
        `${msg}; the server closed the session and rolled the transaction back`,
        initFrom(err),
      );
    case '25006':
      return new ReadOnlyTransactionError(msg, initFrom(err));
    case '3B001':
    case '3B000':
      return new SavepointInvalidError(msg, initFrom(err));
    case '25P01':
      if (ctx.phase === 'savepoint') return new SavepointInvalidError(msg, initFrom(err));
      break;
    case '55000':
      if (ctx.phase === 'prepare') {
        return new PreparedTransactionsDisabledError(
          `${msg}: start the server with max_prepared_transactions > 0 (it can only be set at server start)`,
          initFrom(err),
        );
      }
      break;
    case '22023':
      if (ctx.phase === 'notify') return new NotifyPayloadTooLargeError(msg, initFrom(err));
      break;
    case '42710':
    case '0A000':
      if (ctx.phase === 'prepare') return new PrepareFailedError(msg, initFrom(err));
      if (state === '0A000') return new UnsupportedFeatureError(msg, initFrom(err));
      break;
  }
  if (state.startsWith('23')) return new ConstraintViolationError(msg, initFrom(err));
  if (state.startsWith('40')) {
    // 40000 transaction_rollback, 40002 integrity violation at commit, 40003 completion unknown
    if (state === '40003') return new CommitOutcomeUnknownError(msg, initFrom(err));
    return new TransactionRolledBackError(msg, initFrom(err));
  }
  return new DatabaseError(msg, initFrom(err));
}
