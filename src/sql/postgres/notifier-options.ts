/** The options of `PgNotifier`, validated and with their defaults filled in. */
import type pg from 'pg';
import { InvalidOptionError } from '../../core/errors.js';
import type { OverflowPolicy } from './handler-queue.js';
import type { NotifyErrorInfo } from './notify-types.js';

export interface PgNotifierOptions {
  /** Connection string, or use `client` for a full `pg.ClientConfig`. */
  connectionString?: string;
  client?: pg.ClientConfig;
  /** Where `notify()` sends from (e.g. your pool). Default: the listener connection. */
  sender?: { query(text: string, values?: unknown[]): Promise<unknown> };
  /** Skip notifications sent by this notifier's own session. Default false. */
  ignoreSelf?: boolean;
  /** Queued notifications waiting for handlers. Default 10 000. */
  maxQueue?: number;
  /** Notifications handled at once. Default 1 (in arrival order). */
  concurrency?: number;
  /** What to do when the queue is full. Default `'drop-oldest'`. */
  overflow?: OverflowPolicy;
  /** Reconnect backoff: first delay, growth and cap (ms). Defaults 100, 2, 30 000; ±20% jitter. */
  reconnect?: { initialDelayMs?: number; factor?: number; maxDelayMs?: number };
  /** Interval of the `SELECT 1` liveness probe; 0 turns it off. Default 30 000 ms. */
  healthCheckIntervalMs?: number;
  /** `close()` waits this long for running handlers. Default 5 000 ms. */
  stopTimeoutMs?: number;
  /** Receives handler errors and JSON parse errors. Default: the `error` event only. */
  onError?: (info: NotifyErrorInfo) => void;
}

/** What the notifier runs with. */
export interface ResolvedNotifierOptions {
  /** The listener connection's config (keepAlive on). */
  config: pg.ClientConfig;
  ignoreSelf: boolean;
  maxQueue: number;
  concurrency: number;
  overflow: OverflowPolicy;
  healthCheckIntervalMs: number;
  stopTimeoutMs: number;
  backoff: { initialDelayMs: number; factor: number; maxDelayMs: number };
}

/** An integer option >= `min`, or its default. */
export function positiveInt(name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min)
    throw new InvalidOptionError(`${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

export function resolveNotifierOptions(options: PgNotifierOptions): ResolvedNotifierOptions {
  if (!options || (options.connectionString === undefined && options.client === undefined)) {
    throw new InvalidOptionError('PgNotifier needs connectionString or client (a pg.ClientConfig)');
  }
  const config: pg.ClientConfig = { ...(options.client ?? {}), keepAlive: true };
  if (options.connectionString !== undefined) config.connectionString = options.connectionString;
  const overflow = options.overflow ?? 'drop-oldest';
  if (!['drop-oldest', 'drop-newest', 'error'].includes(overflow)) {
    throw new InvalidOptionError(
      `overflow must be 'drop-oldest', 'drop-newest' or 'error', got ${String(overflow)}`,
    );
  }
  const r = options.reconnect ?? {};
  const backoff = {
    initialDelayMs: positiveInt('reconnect.initialDelayMs', r.initialDelayMs, 100, 0),
    factor: r.factor ?? 2,
    maxDelayMs: positiveInt('reconnect.maxDelayMs', r.maxDelayMs, 30_000, 0),
  };
  if (!(backoff.factor >= 1)) throw new InvalidOptionError('reconnect.factor must be >= 1');
  return {
    config,
    ignoreSelf: options.ignoreSelf ?? false,
    maxQueue: positiveInt('maxQueue', options.maxQueue, 10_000),
    concurrency: positiveInt('concurrency', options.concurrency, 1),
    overflow,
    healthCheckIntervalMs: positiveInt('healthCheckIntervalMs', options.healthCheckIntervalMs, 30_000, 0),
    stopTimeoutMs: positiveInt('stopTimeoutMs', options.stopTimeoutMs, 5_000, 0),
    backoff,
  };
}
