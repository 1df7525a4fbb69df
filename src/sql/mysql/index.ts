/**
 * `txkit/mysql` — transactions on MySQL 8 and MariaDB 10.6+ (mysql2).
 *
 * @example
 * import { mysql } from 'txkit/mysql';
 * const db = mysql({ uri: process.env.DATABASE_URL });
 * await db.transaction(async (tx) => {
 *   await tx.lockRows('accounts', [1, 2]); // one canonical lock order
 *   await tx.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', ['100.00', 1]);
 *   await tx.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', ['100.00', 2]);
 * }, { retry: deadlockRetry, lockWaitTimeoutSec: 5 });
 */
import { MysqlResource } from './adapter.js';
import { MysqlDatabase } from './database.js';
import { MYSQL_TRANSACTION_OPTION_KEYS, type MysqlOptions, resolveMysqlOptions } from './options.js';
import { MysqlTransaction } from './transaction.js';

/** Opens a MySQL / MariaDB database on a mysql2 pool (created from `uri`, or yours via `pool`). */
export function mysql(options: MysqlOptions): MysqlDatabase {
  const resolved = resolveMysqlOptions(options);
  return new MysqlDatabase(new MysqlResource(resolved), resolved.database, {
    transactionOptionKeys: MYSQL_TRANSACTION_OPTION_KEYS,
    scope: MysqlTransaction,
  });
}

export {
  implicitCommitKeyword,
  MysqlResource,
  type MysqlResourceEvents,
  MysqlTx,
  mysqlCapabilities,
  type ServerFacts,
} from './adapter.js';
export { type LockSettings, MysqlDatabase } from './database.js';
export { formatDeadlock } from './deadlock-format.js';
export {
  DeadlockMonitor,
  type DeadlockMonitorEvents,
  type DeadlockMonitorOptions,
  type DeadlockStats,
  deadlockKey,
  fingerprint,
} from './deadlock-monitor.js';
export {
  type DeadlockReport,
  type DeadlockTxn,
  extractDeadlockSection,
  type InnodbStatus,
  type LockInfo,
  parseDeadlocks,
  parseErrorLogDeadlocks,
  parseInnodbStatus,
  statusTextFromRow,
} from './deadlock-parser.js';
export {
  type SimulateDeadlockOptions,
  type SimulateDeadlockResult,
  simulateDeadlock,
} from './deadlock-simulator.js';
export { runMysqlDemo } from './demo.js';
export {
  AuthError,
  type Classification,
  type ClassifyContext,
  classificationOf,
  classifyMysqlError,
  type ErrorKind,
  type ErrorPhase,
  type ErrorScope,
  InsufficientPrivilegeError,
  LockNotAvailableError,
  type MysqlFlavor,
  QueryInterruptedError,
  TooManyConnectionsError,
  TransactionStateError,
  toTxkitError,
  XaError,
} from './errors.js';
export {
  findCycles,
  LockInspector,
  type LockReport,
  type LockWait,
  lockChains,
  type TableLock,
  type TrxInfo,
  type WaitGraph,
} from './lock-inspector.js';
export { isWaitingForLock, waitForLockWait, waitingThreadIds } from './lock-wait-barrier.js';
export { MYSQL_TRANSACTION_OPTION_KEYS, type MysqlOptions, type MysqlTransactionOptions } from './options.js';
export { connectionRetry, deadlockRetry, generalRetry, lockTimeoutRetry, retryOnKinds } from './retry.js';
export { detectServer, parseServerVersion, type ServerInfo } from './server-info.js';
export {
  type LockedRows,
  type LockRowsOptions,
  MysqlTransaction,
  type RowKey,
  RowNotFoundError,
} from './transaction.js';
export {
  normalizeXid,
  type RecoveredXid,
  type Xid,
  xaCommit,
  xaEnd,
  xaPrepare,
  xaRecover,
  xaRollback,
  xaStart,
  xidSql,
} from './xa.js';
