/**
 * The txkit error taxonomy. Every error txkit throws is a `TxkitError` with a stable
 * `code`, a `retryable` flag and the driver's original error as `cause`.
 * Classification is by numeric code / SQLSTATE / errno, never by message text.
 */

export type ErrorCode =
  | 'E_UNIQUE'
  | 'E_FOREIGN_KEY'
  | 'E_CHECK'
  | 'E_NOT_NULL'
  | 'E_CONSTRAINT'
  | 'E_SERIALIZATION'
  | 'E_DEADLOCK'
  | 'E_BUSY'
  | 'E_LOCK_TIMEOUT'
  | 'E_STATEMENT_TIMEOUT'
  | 'E_IDLE_TX_TIMEOUT'
  | 'E_TX_ABORTED'
  | 'E_TX_ROLLED_BACK'
  | 'E_TX_ROLLBACK_ONLY'
  | 'E_COMMIT_UNKNOWN'
  | 'E_CONNECTION'
  | 'E_TX_TIMEOUT'
  | 'E_TX_CLOSED'
  | 'E_ABORTED'
  | 'E_PROPAGATION'
  | 'E_NESTING_DEPTH'
  | 'E_SAVEPOINT_INVALID'
  | 'E_CONCURRENT_NESTED'
  | 'E_IDENTIFIER'
  | 'E_INVALID_OPTION'
  | 'E_INVALID_ARGUMENT'
  | 'E_UNSUPPORTED'
  | 'E_READ_ONLY'
  | 'E_RAW_TX_CONTROL'
  | 'E_POOL_TIMEOUT'
  | 'E_SELF_DEADLOCK'
  | 'E_CLOSED'
  | 'E_OPTIMISTIC_LOCK'
  | 'E_BATCH'
  | 'E_2PC_DISABLED'
  | 'E_2PC_PREPARE'
  | 'E_2PC_IN_DOUBT'
  | 'E_2PC_MIXED'
  | 'E_NOTIFY_PAYLOAD'
  | 'E_DATABASE'
  | (string & {});

export interface TxkitErrorInit {
  cause?: unknown;
  retryable?: boolean;
  /** Driver's own code, e.g. `SQLITE_BUSY_SNAPSHOT` or MySQL `1213`. */
  driverCode?: string | number;
  /** PostgreSQL SQLSTATE (or MySQL SQLSTATE) when the driver gives one. */
  sqlState?: string;
  txId?: string;
  txName?: string;
  constraint?: string;
  table?: string;
  column?: string;
  detail?: string;
}

export class TxkitError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  driverCode?: string | number;
  sqlState?: string;
  txId?: string;
  txName?: string;
  constraint?: string;
  table?: string;
  column?: string;
  detail?: string;
  /** Set when a ROLLBACK issued after this error failed too; it never replaces this error. */
  rollbackError?: unknown;
  /** Set by the retry loop on the error it finally rethrows. */
  attempts?: number;

  constructor(code: ErrorCode, message: string, init: TxkitErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = init.retryable ?? false;
    if (init.driverCode !== undefined) this.driverCode = init.driverCode;
    if (init.sqlState !== undefined) this.sqlState = init.sqlState;
    if (init.txId !== undefined) this.txId = init.txId;
    if (init.txName !== undefined) this.txName = init.txName;
    if (init.constraint !== undefined) this.constraint = init.constraint;
    if (init.table !== undefined) this.table = init.table;
    if (init.column !== undefined) this.column = init.column;
    if (init.detail !== undefined) this.detail = init.detail;
  }
}

type Init = TxkitErrorInit;
const fixed = (code: ErrorCode, retryable: boolean) => (Base: typeof TxkitError) =>
  class extends Base {
    constructor(message: string, init: Init = {}) {
      super(code, message, { retryable, ...init });
    }
  };

/** A constraint was violated (the statement failed; see the subclasses). */
export class ConstraintViolationError extends TxkitError {
  constructor(message: string, init: Init = {}, code: ErrorCode = 'E_CONSTRAINT') {
    super(code, message, { ...init, retryable: false });
  }
}
export class UniqueViolationError extends ConstraintViolationError {
  constructor(message: string, init: Init = {}) {
    super(message, init, 'E_UNIQUE');
  }
}
export class ForeignKeyViolationError extends ConstraintViolationError {
  constructor(message: string, init: Init = {}) {
    super(message, init, 'E_FOREIGN_KEY');
  }
}
export class CheckViolationError extends ConstraintViolationError {
  constructor(message: string, init: Init = {}) {
    super(message, init, 'E_CHECK');
  }
}
export class NotNullViolationError extends ConstraintViolationError {
  constructor(message: string, init: Init = {}) {
    super(message, init, 'E_NOT_NULL');
  }
}

/** The database refused to serialize this transaction; re-running it may succeed. */
export class SerializationFailureError extends fixed('E_SERIALIZATION', true)(TxkitError) {}
/** The database chose this transaction as a deadlock victim; re-running it may succeed. */
export class DeadlockError extends fixed('E_DEADLOCK', true)(TxkitError) {}

/**
 * How a busy error arose: the busy budget ran out waiting (`timeout`), a write inside a
 * transaction could not take the write lock and SQLite refused to wait (`upgrade`), or a
 * table lock in the same connection (`locked`). `SQLITE_BUSY_SNAPSHOT` is a
 * {@link SerializationFailureError} instead.
 */
export type BusyKind = 'timeout' | 'upgrade' | 'locked';
/** SQLite lock contention (`SQLITE_BUSY*`, `SQLITE_LOCKED*`). Not a deadlock. */
export class BusyError extends TxkitError {
  readonly kind: BusyKind;
  constructor(message: string, kind: BusyKind, init: Init = {}) {
    super('E_BUSY', message, { retryable: true, ...init });
    this.kind = kind;
  }
}
export class LockTimeoutError extends fixed('E_LOCK_TIMEOUT', false)(TxkitError) {}
export class StatementTimeoutError extends fixed('E_STATEMENT_TIMEOUT', false)(TxkitError) {}
export class IdleInTransactionTimeoutError extends fixed('E_IDLE_TX_TIMEOUT', false)(TxkitError) {}
/** The server aborted the transaction; statements fail until it rolls back (or back to a savepoint). */
export class TransactionAbortedError extends fixed('E_TX_ABORTED', false)(TxkitError) {}
/** COMMIT was answered with a rollback (e.g. PostgreSQL's `ROLLBACK` tag), or an inner scope failed. */
export class TransactionRolledBackError extends fixed('E_TX_ROLLED_BACK', false)(TxkitError) {}
/** A joined scope failed, so the transaction can only roll back. */
export class RollbackOnlyError extends fixed('E_TX_ROLLBACK_ONLY', false)(TxkitError) {}
/** The connection was lost after COMMIT was sent: the transaction may or may not have committed. */
export class CommitOutcomeUnknownError extends fixed('E_COMMIT_UNKNOWN', false)(TxkitError) {}
/** The connection failed; `retryable` is true only when nothing had been sent that could have written. */
export class ConnectionLostError extends fixed('E_CONNECTION', false)(TxkitError) {}
export class TransactionTimeoutError extends fixed('E_TX_TIMEOUT', false)(TxkitError) {}
export class TransactionClosedError extends fixed('E_TX_CLOSED', false)(TxkitError) {}
/** The caller's AbortSignal fired. */
export class TransactionCancelledError extends fixed('E_ABORTED', false)(TxkitError) {}
export class IllegalTransactionStateError extends fixed('E_PROPAGATION', false)(TxkitError) {}
export class NestingDepthExceededError extends fixed('E_NESTING_DEPTH', false)(TxkitError) {}
export class SavepointInvalidError extends fixed('E_SAVEPOINT_INVALID', false)(TxkitError) {}
export class ConcurrentNestedTransactionError extends fixed('E_CONCURRENT_NESTED', false)(TxkitError) {}
export class InvalidIdentifierError extends fixed('E_IDENTIFIER', false)(TxkitError) {}
export class InvalidOptionError extends fixed('E_INVALID_OPTION', false)(TxkitError) {}
export class InvalidArgumentError extends fixed('E_INVALID_ARGUMENT', false)(TxkitError) {}
export class UnsupportedFeatureError extends fixed('E_UNSUPPORTED', false)(TxkitError) {}
export class ReadOnlyTransactionError extends fixed('E_READ_ONLY', false)(TxkitError) {}
export class RawTransactionControlError extends fixed('E_RAW_TX_CONTROL', false)(TxkitError) {}
/** No connection could be had in time. The message says who holds them. */
export class PoolTimeoutError extends fixed('E_POOL_TIMEOUT', false)(TxkitError) {}
/** An inner transaction would wait on a lock held by its own suspended outer transaction. */
export class SelfDeadlockError extends fixed('E_SELF_DEADLOCK', false)(TxkitError) {}
export class DatabaseClosedError extends fixed('E_CLOSED', false)(TxkitError) {}
export class OptimisticLockError extends fixed('E_OPTIMISTIC_LOCK', false)(TxkitError) {}
export class PreparedTransactionsDisabledError extends fixed('E_2PC_DISABLED', false)(TxkitError) {}
export class PrepareFailedError extends fixed('E_2PC_PREPARE', false)(TxkitError) {}
export class InDoubtTransactionError extends fixed('E_2PC_IN_DOUBT', false)(TxkitError) {}
export class HeuristicMixedError extends fixed('E_2PC_MIXED', false)(TxkitError) {}
export class NotifyPayloadTooLargeError extends fixed('E_NOTIFY_PAYLOAD', false)(TxkitError) {}
/** A driver error that no more specific class describes. */
export class DatabaseError extends fixed('E_DATABASE', false)(TxkitError) {}

/** True only for errors that re-running the whole transaction can cure. */
export function isRetryable(err: unknown): boolean {
  return err instanceof TxkitError && err.retryable;
}

/** The spec's name for {@link isRetryable}. */
export const isRetryableTransactionError = isRetryable;

/** Coarse DB-API-like groups, for code that only wants a class of failure. */
export const isIntegrityError = (err: unknown): boolean => err instanceof ConstraintViolationError;
export const isOperationalError = (err: unknown): boolean =>
  err instanceof TxkitError &&
  [
    'E_SERIALIZATION',
    'E_DEADLOCK',
    'E_BUSY',
    'E_LOCK_TIMEOUT',
    'E_STATEMENT_TIMEOUT',
    'E_IDLE_TX_TIMEOUT',
    'E_CONNECTION',
    'E_COMMIT_UNKNOWN',
  ].includes(err.code);

/** Attaches a failed rollback to the error that caused it, never replacing it. */
export function attachRollbackError(err: unknown, rollbackErr: unknown): void {
  if (err !== null && typeof err === 'object') {
    try {
      (err as { rollbackError?: unknown }).rollbackError = rollbackErr;
    } catch {
      // frozen error objects: nothing to attach to
    }
  }
}

/**
 * A copy of `err` for one more recipient: same class, message, code, cause and stack. When
 * one failure ends several callers, each gets its own object, so what one caller's retry
 * records on it (`attempts`) cannot overwrite another's.
 */
export function copyError<E>(err: E): E {
  if (!(err instanceof Error)) return err;
  return Object.create(Object.getPrototypeOf(err), Object.getOwnPropertyDescriptors(err)) as E;
}
