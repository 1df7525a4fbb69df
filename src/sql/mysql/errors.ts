/**
 * MySQL / MariaDB error classification: numeric errno, SQLSTATE and the Node error code,
 * read together with the server flavour and the phase the error happened in. Never the
 * message text, and never mysql2's `code` string alone (it mislabels MariaDB-only errnos:
 * 4025 arrives as `ER_INNODB_AUTOEXTEND_SIZE_OUT_OF_RANGE`, 1969 with no code at all).
 */
import {
  CheckViolationError,
  CommitOutcomeUnknownError,
  ConnectionLostError,
  DatabaseError,
  DeadlockError,
  ForeignKeyViolationError,
  LockTimeoutError,
  NotNullViolationError,
  ReadOnlyTransactionError,
  SavepointInvalidError,
  SerializationFailureError,
  StatementTimeoutError,
  TxkitError,
  type TxkitErrorInit,
  UniqueViolationError,
} from '../../core/errors.js';

export type MysqlFlavor = 'mysql' | 'mariadb';

/** What the server undid, hence what is left to do with the connection and the transaction. */
export type ErrorScope = 'statement' | 'transaction' | 'connection' | 'none';

/** Where the error happened: it decides whether a lost connection left an unknown outcome. */
export type ErrorPhase = 'connect' | 'statement' | 'autocommit' | 'commit' | 'rollback';

export type ErrorKind =
  | 'deadlock'
  | 'lock_wait_timeout'
  | 'lock_not_available'
  | 'snapshot_conflict'
  | 'statement_timeout'
  | 'client_timeout'
  | 'query_interrupted'
  | 'connection_lost'
  | 'connect_failed'
  | 'too_many_connections'
  | 'commit_outcome_unknown'
  | 'duplicate_key'
  | 'foreign_key'
  | 'check_constraint'
  | 'not_null'
  | 'read_only'
  | 'transaction_state'
  | 'savepoint_missing'
  | 'privilege'
  | 'auth'
  | 'xa'
  | 'other';

export interface Classification {
  kind: ErrorKind;
  /** Re-running the whole transaction (on a new connection if need be) may succeed. */
  retryable: boolean;
  scope: ErrorScope;
  /** COMMIT was sent and no answer came back: it may or may not have committed. */
  commitOutcomeUnknown: boolean;
  errno?: number;
  sqlState?: string;
  code?: string;
}

export interface ClassifyContext {
  /** Server flavour; when unknown, SQLSTATE disambiguates the errnos the two reuse. */
  flavor?: MysqlFlavor | undefined;
  phase?: ErrorPhase;
  /** `innodb_rollback_on_timeout=ON`: a 1205 rolls back the whole transaction. */
  rollbackOnTimeout?: boolean;
  /** The statement used NOWAIT or WAIT n, so a 1205 means "locked", not a long wait. */
  nowait?: boolean;
}

/** The fields a mysql2 error carries. */
export interface DriverErrorLike {
  errno?: number;
  code?: string;
  sqlState?: string;
  fatal?: boolean;
  sqlMessage?: string;
  sql?: string;
}

/** Node / mysql2 codes meaning "could not connect"; each is worth retrying with backoff. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** Codes meaning "the connection died under us". */
const LOST_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_PACKETS_OUT_OF_ORDER',
  'ERR_STREAM_DESTROYED',
]);
/** Server errnos that end the session (shutdown, killed, network read/write errors). */
const LOST_ERRNOS = new Set([1053, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1927]);
const PRIVILEGE_ERRNOS = new Set([1044, 1095, 1142, 1143, 1227, 1370]);
const XA_ERRNOS = new Set([1397, 1398, 1399, 1400, 1401, 1402, 1440, 1613, 1614]);

function driverFields(err: unknown): DriverErrorLike {
  if (err === null || typeof err !== 'object') return {};
  const e = err as Record<string, unknown>;
  const out: DriverErrorLike = {};
  if (typeof e.errno === 'number') out.errno = e.errno;
  if (typeof e.code === 'string') out.code = e.code;
  if (typeof e.sqlState === 'string') out.sqlState = e.sqlState;
  if (typeof e.fatal === 'boolean') out.fatal = e.fatal;
  if (typeof e.sqlMessage === 'string') out.sqlMessage = e.sqlMessage;
  if (typeof e.sql === 'string') out.sql = e.sql;
  return out;
}

/** Server errors carry a SQLSTATE; Node socket errors carry a negative errno instead. */
function isServerError(d: DriverErrorLike): boolean {
  return typeof d.errno === 'number' && d.errno > 0 && d.sqlState !== undefined;
}

/**
 * Classifies a mysql2 error (or an already-wrapped one, through its `cause`) by errno,
 * SQLSTATE and Node code together with the flavour and phase.
 */
export function classifyMysqlError(err: unknown, ctx: ClassifyContext = {}): Classification {
  const raw = err instanceof TxkitError && err.cause !== undefined ? err.cause : err;
  const d = driverFields(raw);
  const base = {
    ...(d.errno !== undefined ? { errno: d.errno } : {}),
    ...(d.sqlState !== undefined ? { sqlState: d.sqlState } : {}),
    ...(d.code !== undefined ? { code: d.code } : {}),
  };
  const phase = ctx.phase ?? 'statement';
  const make = (kind: ErrorKind, retryable: boolean, scope: ErrorScope, unknown = false): Classification => ({
    kind,
    retryable,
    scope,
    commitOutcomeUnknown: unknown,
    ...base,
  });
  const lost = (): Classification => {
    if (phase === 'connect') return make('connect_failed', true, 'connection');
    if (phase === 'commit') return make('commit_outcome_unknown', false, 'connection', true);
    // In a transaction the server rolls everything back when the session dies, so the whole
    // transaction can be replayed; an autocommit write may or may not have happened.
    return make('connection_lost', phase === 'statement', 'connection');
  };

  if (isServerError(d)) {
    const errno = d.errno as number;
    switch (errno) {
      case 1213:
        return make('deadlock', true, 'transaction');
      case 1205:
        if (ctx.nowait)
          return make('lock_not_available', false, ctx.rollbackOnTimeout ? 'transaction' : 'statement');
        return make('lock_wait_timeout', false, ctx.rollbackOnTimeout ? 'transaction' : 'statement');
      case 3572:
        return make('lock_not_available', false, 'statement');
      case 1020:
        return make('snapshot_conflict', true, 'statement');
      case 3058:
        return make('deadlock', true, 'none');
      case 1614:
      case 3101:
        return make('deadlock', true, 'transaction');
      case 1180:
        return make('commit_outcome_unknown', false, 'connection', true);
      case 1181:
        return make('other', false, 'connection');
      case 1317:
        return make('query_interrupted', false, 'statement');
      case 1969:
      case 3024:
        return make('statement_timeout', false, 'statement');
      case 1040:
      case 1203:
      case 1226:
        return make('too_many_connections', true, phase === 'connect' ? 'none' : 'connection');
      case 1045:
        return make('auth', false, 'none');
      case 1062:
      case 1586:
        return make('duplicate_key', false, 'statement');
      case 1216:
      case 1217:
      case 1451:
      case 1452:
        return make('foreign_key', false, 'statement');
      case 3819:
        return ctx.flavor === 'mariadb'
          ? make('other', false, 'statement')
          : make('check_constraint', false, 'statement');
      case 4025:
        // MariaDB ER_CONSTRAINT_FAILED (SQLSTATE 23000); MySQL reuses 4025 for a DDL error.
        return d.sqlState === '23000' || ctx.flavor === 'mariadb'
          ? make('check_constraint', false, 'statement')
          : make('other', false, 'statement');
      case 1048:
      case 1364:
        return make('not_null', false, 'statement');
      case 1792:
        return make('read_only', false, 'statement');
      case 1568:
      case 1179:
        return make('transaction_state', false, 'statement');
      case 1305:
        return make('savepoint_missing', false, 'statement');
      default:
        if (LOST_ERRNOS.has(errno)) return lost();
        if (PRIVILEGE_ERRNOS.has(errno)) return make('privilege', false, 'statement');
        if (XA_ERRNOS.has(errno)) return make('xa', false, 'statement');
        return make('other', false, 'statement');
    }
  }

  if (d.code === 'PROTOCOL_SEQUENCE_TIMEOUT') {
    // The client gave up; the server statement may still be running (F27).
    return make('client_timeout', false, 'connection', phase === 'commit');
  }
  if (d.code !== undefined && CONNECT_CODES.has(d.code) && (phase === 'connect' || d.code !== 'ETIMEDOUT')) {
    if (phase === 'connect') return make('connect_failed', true, 'connection');
    return lost();
  }
  if (d.code === 'ENOTFOUND') return make('connect_failed', false, 'connection');
  if ((d.code !== undefined && LOST_CODES.has(d.code)) || d.code === 'ETIMEDOUT' || d.fatal === true)
    return lost();
  return make('other', false, 'none');
}

/** The session has the PROCESS (or other) privilege missing for a diagnostic. */
export class InsufficientPrivilegeError extends TxkitError {
  /** The privilege the operation needs, when txkit knows it. */
  readonly privilege: string | undefined;
  constructor(message: string, privilege?: string, init: TxkitErrorInit = {}) {
    super('E_PRIVILEGE', message, { ...init, retryable: false });
    this.privilege = privilege;
  }
}

/** Wrong user or password (1045). */
export class AuthError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_AUTH', message, { ...init, retryable: false });
  }
}

/** `KILL QUERY` interrupted the statement (1317). The transaction is still open. */
export class QueryInterruptedError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_QUERY_INTERRUPTED', message, { ...init, retryable: false });
  }
}

/** NOWAIT / WAIT n found the row locked (MariaDB 1205 on such a statement, MySQL 3572). */
export class LockNotAvailableError extends LockTimeoutError {}

/** A transaction-control command was refused in the current state (1568, nested begin). */
export class TransactionStateError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_TX_STATE', message, { ...init, retryable: false });
  }
}

/** An XA command failed (XAER_NOTA, XAER_RMFAIL, duplicate xid, ...). */
export class XaError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_XA', message, { ...init, retryable: false });
  }
}

/** Too many connections (1040/1203/1226): retry later with backoff. */
export class TooManyConnectionsError extends ConnectionLostError {}

const CLASSIFIED = new WeakMap<TxkitError, Classification>();

/** The classification a wrapped error was made from, if txkit's MySQL layer made it. */
export function classificationOf(err: unknown): Classification | undefined {
  return err instanceof TxkitError ? CLASSIFIED.get(err) : undefined;
}

function describe(d: DriverErrorLike, fallback: unknown): string {
  if (d.sqlMessage !== undefined)
    return `${d.errno ?? ''}${d.sqlState ? ` (${d.sqlState})` : ''}: ${d.sqlMessage}`;
  if (fallback instanceof Error) return fallback.message;
  return String(fallback);
}

/**
 * Wraps a driver error in the txkit taxonomy. Already-classified errors are returned as
 * they are. The SQL text is kept in `detail` (never the parameter values).
 */
export function toTxkitError(err: unknown, ctx: ClassifyContext = {}): TxkitError {
  if (err instanceof TxkitError) return err;
  const d = driverFields(err);
  const c = classifyMysqlError(err, ctx);
  const init: TxkitErrorInit = {
    cause: err,
    ...(d.errno !== undefined && d.errno > 0
      ? { driverCode: d.errno }
      : d.code
        ? { driverCode: d.code }
        : {}),
    ...(d.sqlState !== undefined ? { sqlState: d.sqlState } : {}),
    ...(d.sql !== undefined ? { detail: d.sql.length > 500 ? `${d.sql.slice(0, 500)}…` : d.sql } : {}),
  };
  const msg = describe(d, err);
  let out: TxkitError;
  switch (c.kind) {
    case 'deadlock':
      out = new DeadlockError(`deadlock: the server rolled back this transaction (${msg})`, init);
      break;
    case 'lock_wait_timeout':
      out = new LockTimeoutError(
        c.scope === 'transaction'
          ? `lock wait timeout; innodb_rollback_on_timeout rolled back the whole transaction (${msg})`
          : `lock wait timeout; only the statement was rolled back (${msg})`,
        init,
      );
      break;
    case 'lock_not_available':
      out = new LockNotAvailableError(`row is locked and the statement would not wait (${msg})`, init);
      break;
    case 'snapshot_conflict':
      out = new SerializationFailureError(
        `snapshot conflict: the row changed since this transaction read it (${msg})`,
        init,
      );
      break;
    case 'statement_timeout':
      out = new StatementTimeoutError(`statement timeout (${msg})`, init);
      break;
    case 'client_timeout':
      out = new StatementTimeoutError(
        `client-side statement timeout; the server may still be running it (${msg})`,
        init,
      );
      break;
    case 'query_interrupted':
      out = new QueryInterruptedError(`statement interrupted by KILL QUERY (${msg})`, init);
      break;
    case 'commit_outcome_unknown':
      out = new CommitOutcomeUnknownError(
        `connection failed during COMMIT: it may or may not have committed (${msg})`,
        init,
      );
      break;
    case 'too_many_connections':
      out = new TooManyConnectionsError(`too many connections (${msg})`, { ...init, retryable: true });
      break;
    case 'connect_failed':
      out = new ConnectionLostError(`could not connect (${msg})`, { ...init, retryable: c.retryable });
      break;
    case 'connection_lost':
      out = new ConnectionLostError(`connection lost (${msg})`, { ...init, retryable: c.retryable });
      break;
    case 'duplicate_key':
      out = new UniqueViolationError(`duplicate key (${msg})`, init);
      break;
    case 'foreign_key':
      out = new ForeignKeyViolationError(`foreign key violation (${msg})`, init);
      break;
    case 'check_constraint':
      out = new CheckViolationError(`check constraint violated (${msg})`, init);
      break;
    case 'not_null':
      out = new NotNullViolationError(`NOT NULL violated (${msg})`, init);
      break;
    case 'read_only':
      out = new ReadOnlyTransactionError(`write in a READ ONLY transaction (${msg})`, init);
      break;
    case 'transaction_state':
      out = new TransactionStateError(`transaction state does not allow this (${msg})`, init);
      break;
    case 'savepoint_missing':
      out = new SavepointInvalidError(`savepoint does not exist (${msg})`, init);
      break;
    case 'privilege':
      out = new InsufficientPrivilegeError(`insufficient privilege (${msg})`, undefined, init);
      break;
    case 'auth':
      out = new AuthError(`authentication failed (${msg})`, init);
      break;
    case 'xa':
      out = new XaError(`XA error (${msg})`, init);
      break;
    default:
      out = new DatabaseError(msg, init);
  }
  CLASSIFIED.set(out, c);
  return out;
}
