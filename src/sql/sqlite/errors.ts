/**
 * SQLite error classification by extended result code (`err.code` of better-sqlite3's
 * SqliteError), never by message text.
 */
import {
  BusyError,
  CheckViolationError,
  ConnectionLostError,
  ConstraintViolationError,
  DatabaseError,
  ForeignKeyViolationError,
  InvalidArgumentError,
  NotNullViolationError,
  ReadOnlyTransactionError,
  SerializationFailureError,
  StatementTimeoutError,
  TxkitError,
  UniqueViolationError,
} from '../../core/errors.js';

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for SQLITE_BUSY and its extended codes except BUSY_SNAPSHOT (which waiting cannot cure). */
export function isBusy(err: unknown): boolean {
  const code = codeOf(err);
  return code?.startsWith('SQLITE_BUSY') === true && code !== 'SQLITE_BUSY_SNAPSHOT';
}

/** Maps a better-sqlite3 error to the txkit taxonomy. */
export function classifySqliteError(err: unknown): TxkitError {
  if (err instanceof TxkitError) return err;
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  const init = { cause: err, ...(code ? { driverCode: code } : {}) };
  if (code === undefined) {
    // better-sqlite3 reports binding and API misuse as TypeError / RangeError.
    if (err instanceof TypeError || err instanceof RangeError) return new InvalidArgumentError(message, init);
    return new DatabaseError(message, init);
  }
  if (code.startsWith('SQLITE_CONSTRAINT')) {
    // "UNIQUE constraint failed: users.email" — the detail after the colon names the constraint.
    const detail = message.includes(': ') ? message.slice(message.indexOf(': ') + 2) : undefined;
    const withDetail = { ...init, ...(detail ? { constraint: detail, detail } : {}) };
    switch (code) {
      case 'SQLITE_CONSTRAINT_UNIQUE':
      case 'SQLITE_CONSTRAINT_PRIMARYKEY':
        return new UniqueViolationError(message, withDetail);
      case 'SQLITE_CONSTRAINT_FOREIGNKEY':
        return new ForeignKeyViolationError(message, withDetail);
      case 'SQLITE_CONSTRAINT_CHECK':
        return new CheckViolationError(message, withDetail);
      case 'SQLITE_CONSTRAINT_NOTNULL':
        return new NotNullViolationError(message, withDetail);
      default:
        return new ConstraintViolationError(message, withDetail);
    }
  }
  if (code === 'SQLITE_BUSY_SNAPSHOT') {
    return new SerializationFailureError(
      `${message} (another connection committed since this transaction's snapshot; the whole transaction must be re-run)`,
      init,
    );
  }
  if (code.startsWith('SQLITE_BUSY')) return new BusyError(message, 'upgrade', init);
  if (code.startsWith('SQLITE_LOCKED')) return new BusyError(message, 'locked', init);
  if (code.startsWith('SQLITE_READONLY')) return new ReadOnlyTransactionError(message, init);
  if (code.startsWith('SQLITE_IOERR')) return new ConnectionLostError(message, init);
  if (code === 'SQLITE_INTERRUPT') return new StatementTimeoutError(message, init);
  if (code === 'SQLITE_RANGE' || code === 'SQLITE_MISMATCH') return new InvalidArgumentError(message, init);
  return new DatabaseError(message, init);
}
