/**
 * What the parts of `redisTx` share: the owned connections, events and metrics.
 */
import type { Redis } from 'ioredis';
import type { EventHub } from '../core/events.js';
import type { RedisArg } from './commands.js';
import type { RedisClient } from './connection.js';
import type { RedisEvents } from './events.js';
import type { RedisMetrics } from './metrics.js';
import type { OptimisticLane } from './optimistic-lane.js';

export interface RedisContext {
  readonly isCluster: boolean;
  readonly events: EventHub<RedisEvents>;
  readonly metrics: RedisMetrics;
  /** The owned, resend-free connection for MULTI, pipelines and scripts, once ready. */
  shared(): Promise<RedisClient>;
  /** Leases a dedicated connection to the node serving `slot` (any node when standalone). */
  lease(slot: number | undefined, signal?: AbortSignal): Promise<Redis>;
  /** The in-process queue of optimistic attempts on this key set (see `OptimisticLane`). */
  lane(queueKey: string, keys: readonly RedisArg[], slot: number | undefined): OptimisticLane;
  /** True while other callers wait for a connection from `conn`'s pool. */
  contended(conn: Redis): boolean;
  /** Gives a leased connection back; `healthy: false` destroys it. */
  release(conn: Redis, healthy: boolean): void;
}
