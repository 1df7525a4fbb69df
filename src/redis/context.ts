/**
 * What the parts of `redisTx` share: the owned connections, events and metrics.
 */
import type { Redis } from 'ioredis';
import type { EventHub } from '../core/events.js';
import type { RedisClient } from './connection.js';
import type { RedisEvents } from './events.js';
import type { RedisMetrics } from './metrics.js';

export interface RedisContext {
  readonly isCluster: boolean;
  readonly events: EventHub<RedisEvents>;
  readonly metrics: RedisMetrics;
  /** The owned, resend-free connection for MULTI, pipelines and scripts, once ready. */
  shared(): Promise<RedisClient>;
  /** Leases a dedicated connection to the node serving `slot` (any node when standalone). */
  lease(slot: number | undefined, signal?: AbortSignal): Promise<Redis>;
  /**
   * Runs `fn` after every earlier call with the same `key` has finished, or released its
   * turn early with `done()` (in-process FIFO). Optimistic attempts on the same keys
   * would only conflict with each other.
   */
  serialize<T>(key: string, fn: (done: () => void) => Promise<T>): Promise<T>;
  /** Gives a leased connection back; `healthy: false` destroys it. */
  release(conn: Redis, healthy: boolean): void;
}
