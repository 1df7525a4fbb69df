/**
 * txkit — correct, fast and visible transactions for Node.js.
 *
 * The core engine: run transactions on any resource (`txkit/sqlite`, `txkit/postgres`,
 * `txkit/mysql`), the ambient transaction, the error taxonomy, events and metrics.
 */
export { currentTransaction } from './core/context.js';
export { Database, type DatabaseOptions, type ManualTransaction } from './core/database.js';
export { Transactional, transactional } from './core/decorators.js';
export * from './core/errors.js';
export { CHANNELS, type RollbackReason, type TxEvents } from './core/events.js';
export { assertIdentifier, IDENTIFIER_PATTERN } from './core/identifier.js';
export type { MetricsSnapshot, SlowTransaction } from './core/metrics.js';
export {
  type NonTransactionalPropagation,
  PROPAGATIONS,
  type Propagation,
  type TransactionOptions,
} from './core/options.js';
export {
  ANOMALIES,
  type Anomaly,
  type Capabilities,
  type ExecuteResult,
  ISOLATION_LEVELS,
  type IsolationCapability,
  type IsolationLevel,
  type Params,
  type Resource,
  type ResourceTx,
  type StatementCallback,
} from './core/resource.js';
export { DEFAULT_RETRY, type Jitter, type RetryPolicy, retryDelay } from './core/retry.js';
export type { Savepoint, ScopeInfo, Transaction, Tx, TxState } from './core/transaction.js';
