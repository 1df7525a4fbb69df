/**
 * `txkit/redis`: Redis transactions that tell the truth. Redis never rolls back; txkit
 * makes every outcome explicit (committed with per-command errors, rejected at queue time,
 * WATCH conflict, unknown after EXEC was sent) and never re-sends a write blindly.
 *
 * @example
 * import Redis from 'ioredis';
 * import { redisTx } from 'txkit/redis';
 * const tx = redisTx(new Redis());
 * const r = await tx.multi((m) => m.set('a', '1').incr('counter'));
 */
export { CommandBuilder, type QueuedCommand, type RedisArg } from './commands.js';
export {
  type CommandReply,
  CrossSlotError,
  ExecAbortError,
  PartialTransactionError,
  type QueuedCommandError,
  RedisReplyError,
  ScriptError,
  TransactionOutcomeUnknownError,
  TransactionStateError,
  WatchConflictError,
} from './errors.js';
export type { RedisEvents, TxStatus } from './events.js';
export { commonSlot, keySlot } from './key-slot.js';
export { type HistogramSnapshot, type MetricsSnapshot, RedisMetrics } from './metrics.js';
export { MultiBuilder, type TxResult, type TxState } from './multi.js';
export {
  type Abort,
  abort,
  OPTIMISTIC_RETRY_DEFAULTS,
  type Ops,
  type OptimisticOptions,
  type OptimisticResult,
} from './optimistic.js';
export {
  type CommandTuple,
  DEFAULT_BATCH_SIZE,
  MAX_BATCH_SIZE,
  type PipelineOptions,
  type PipelineReply,
  type PipelineResult,
} from './pipeline.js';
export {
  type DeductInput,
  type DeductResult,
  deductStockScript,
  Inventory,
  type InventoryOptions,
} from './recipes/inventory.js';
export {
  type RateLimitDecision,
  RateLimiter,
  type RateLimiterOptions,
  slidingWindowScript,
} from './recipes/rate-limiter.js';
export {
  type TransferInput,
  type TransferResult,
  Transfers,
  type TransfersOptions,
  transferScript,
} from './recipes/transfer.js';
export { type MultiOptions, RedisTx, type RedisTxOptions, redisTx } from './redis-tx.js';
export { decodeJson, defineScript, type Script, type ScriptDefinition } from './script.js';
export { type RunChunkedOptions, type ScriptInfo, ScriptRegistry } from './script-registry.js';
export { WatchedReader } from './watched-reader.js';
