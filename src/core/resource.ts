/**
 * The Resource SPI: what a backend adapter implements so the engine can drive it.
 * The engine owns propagation, retry, deadlines, hooks, events and metrics; a resource
 * only knows how to begin, run statements, make savepoints, commit, roll back, prepare,
 * and how to classify its errors.
 */
import type { TxkitError } from './errors.js';

export type IsolationLevel = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';
export const ISOLATION_LEVELS: readonly IsolationLevel[] = [
  'read uncommitted',
  'read committed',
  'repeatable read',
  'serializable',
];

/** Anomalies an isolation level may or may not prevent on a given backend. */
export type Anomaly =
  | 'dirty_read'
  | 'non_repeatable_read'
  | 'phantom_read'
  | 'lost_update'
  | 'read_skew'
  | 'write_skew';
export const ANOMALIES: readonly Anomaly[] = [
  'dirty_read',
  'non_repeatable_read',
  'phantom_read',
  'lost_update',
  'read_skew',
  'write_skew',
];

export interface IsolationCapability {
  /** The level the backend really runs when this one is asked for. */
  effective: IsolationLevel;
  /** Anomalies this level really prevents on this backend (verified by tests). */
  prevents: readonly Anomaly[];
}

export interface Capabilities {
  /** Per requested isolation level: what the backend really gives. */
  isolation: Readonly<Record<IsolationLevel, IsolationCapability>>;
  /** The level used when none is requested. */
  defaultIsolation: IsolationLevel;
  savepoints: boolean;
  readOnly: boolean;
  deferrable: boolean;
  /** Can prepare (2PC/XA) and so take part in a two-phase commit. */
  twoPhase: boolean;
  /** A second physical transaction can run while one is suspended (`requires_new`). */
  concurrentTransactions: boolean;
  /** A failed statement aborts the whole transaction (PostgreSQL) rather than only itself. */
  statementErrorAbortsTransaction: boolean;
}

export interface ExecuteResult {
  rowsAffected: number;
  /** Auto-generated id of the last inserted row, where the backend reports one. */
  lastInsertId?: number | bigint | string;
}

/** Statement parameters: positional, or named where the backend supports it. */
export type Params = readonly unknown[] | Readonly<Record<string, unknown>>;

/** What the engine tells a resource when it begins a physical transaction. */
export interface BeginRequest {
  txId: string;
  name?: string | undefined;
  isolation?: IsolationLevel | undefined;
  readOnly: boolean;
  deferrable: boolean;
  /** Absolute deadline (performance.now() based), when a timeout applies. */
  deadline?: number | undefined;
  /**
   * Physical transactions of this same resource suspended in the caller's async context
   * (`requires_new`, `not_supported`). A resource with a single writer must not queue
   * behind them: that would wait forever.
   */
  suspended: readonly ResourceTx[];
  /** Resource-specific options passed through from the transaction options. */
  extra: Readonly<Record<string, unknown>>;
}

/** Options for statements run outside any transaction (autocommit). */
export interface AutocommitRequest {
  suspended: readonly ResourceTx[];
}

/** Completes a statement: `done(error)` or `done(null, value)`. The error must be an object. */
export type StatementCallback<T> = (err: Error | null, value?: T) => void;

/** One physical transaction on one connection. */
export interface ResourceTx {
  /** The level actually in force, as the backend reports it. */
  readonly isolation: IsolationLevel;
  readonly readOnly: boolean;
  query<T = Record<string, unknown>>(sql: string, params?: Params): Promise<T[]>;
  execute(sql: string, params?: Params): Promise<ExecuteResult>;
  /**
   * Optional synchronous forms, for drivers that execute synchronously (better-sqlite3):
   * they return the result or throw the classified error, saving a promise per statement.
   */
  querySync?<T = Record<string, unknown>>(sql: string, params?: Params): T[];
  executeSync?(sql: string, params?: Params): ExecuteResult;
  /**
   * Optional callback forms, for asynchronous drivers with a callback API (pg): the engine
   * passes the statement's own completion, so the resource needs no promise of its own
   * (on Node 20 each promise costs an async hook once AsyncLocalStorage is in use). Call
   * `done` exactly once; throwing synchronously also fails the statement.
   */
  queryCb?<T = Record<string, unknown>>(
    sql: string,
    params: Params | undefined,
    done: StatementCallback<T[]>,
  ): void;
  executeCb?(sql: string, params: Params | undefined, done: StatementCallback<ExecuteResult>): void;
  savepoint(name: string): Promise<void>;
  rollbackTo(name: string): Promise<void>;
  release(name: string): Promise<void>;
  /**
   * Commits. On failure it must leave the transaction either definitely rolled back (and
   * throw the classified error) or throw a `CommitOutcomeUnknownError`. Never resolves
   * unless the server acknowledged the commit.
   */
  commit(): Promise<void>;
  /** Rolls back and returns the connection (or destroys it when in doubt). Never throws twice. */
  rollback(): Promise<void>;
  /**
   * After a statement error: is the server transaction still usable? PostgreSQL says no
   * (aborted until ROLLBACK [TO]); SQLite says yes unless SQLite ended it itself.
   */
  usableAfterError(err: TxkitError): boolean;
  /** Cancels the statement in flight on the server, if any (deadline or signal). */
  cancel?(): Promise<void>;
  /** Two-phase: prepares and ends this transaction under `gid`, releasing the connection. */
  prepare?(gid: string): Promise<void>;
}

export interface PreparedInfo {
  gid: string;
  preparedAt?: Date;
  ageMs?: number;
  owner?: string;
  database?: string;
}

export interface Resource {
  /** Short name for events and metrics, e.g. `sqlite`, `postgres`. */
  readonly kind: string;
  readonly capabilities: Capabilities;
  begin(req: BeginRequest): Promise<ResourceTx>;
  query<T = Record<string, unknown>>(
    sql: string,
    params: Params | undefined,
    req: AutocommitRequest,
  ): Promise<T[]>;
  execute(sql: string, params: Params | undefined, req: AutocommitRequest): Promise<ExecuteResult>;
  /** Maps any driver error to the taxonomy. Already-classified errors are returned as they are. */
  classify(err: unknown): TxkitError;
  close(): Promise<void>;
  /** Two-phase commit primitives, for resources that can prepare. */
  commitPrepared?(gid: string): Promise<void>;
  rollbackPrepared?(gid: string): Promise<void>;
  listPrepared?(prefix?: string): Promise<PreparedInfo[]>;
}
