/**
 * The PostgreSQL Database: the engine on a PostgresResource, plus PostgreSQL's own tools
 * (notifier, prepared transactions, pool status).
 */
import type pg from 'pg';
import { Database } from '../../core/database.js';
import type { PreparedInfo } from '../../core/resource.js';
import type { PostgresResource } from './adapter.js';
import { type MonitorOptions, PgMonitor } from './monitor.js';
import { notify, PgNotifier, type PgNotifierOptions } from './notify.js';
import { rollbackPrepared } from './prepared.js';
import type { PostgresTransaction } from './transaction.js';

export interface PoolStatus {
  max: number;
  total: number;
  idle: number;
  checkedOut: number;
  waiting: number;
}

export class PostgresDatabase extends Database<PostgresResource, PostgresTransaction> {
  /** The underlying `pg.Pool`. Statements run on it directly bypass txkit's transaction rules. */
  get pool(): pg.Pool {
    return this.resource.pool;
  }

  /** Pool occupancy, for dashboards and `PoolTimeoutError` diagnosis. */
  poolStatus(): PoolStatus {
    const p = this.resource.pool;
    const max = p.options.max ?? 10;
    return {
      max,
      total: p.totalCount,
      idle: p.idleCount,
      checkedOut: p.totalCount - p.idleCount,
      waiting: p.waitingCount,
    };
  }

  /** Activity, locks, blocking chains, prepared transactions and NOTIFY queue usage of this server. */
  monitor(options: MonitorOptions = {}): PgMonitor {
    return new PgMonitor(this.resource.pool, options);
  }

  /**
   * A LISTEN/NOTIFY notifier on its own dedicated connection to the same server (never a
   * pooled one); its `notify()` sends through this database's pool. Close it yourself.
   */
  notifier(options: Omit<PgNotifierOptions, 'connectionString' | 'client'> = {}): PgNotifier {
    return new PgNotifier({
      client: this.resource.options.clientConfig,
      sender: this.resource.pool,
      ...options,
    });
  }

  /**
   * Sends a notification: in the ambient transaction of this database when there is one
   * (delivered at its commit), otherwise right away.
   */
  async notify(channel: string, payload = ''): Promise<void> {
    await notify(this, channel, payload);
  }

  /** Fails with `PreparedTransactionsDisabledError` when the server has `max_prepared_transactions = 0`. */
  preflightPrepared(): Promise<number> {
    return this.resource.preflightPrepared();
  }

  /** `COMMIT PREPARED` (throws `E_2PC_NOT_FOUND` when the GID no longer exists). */
  commitPrepared(gid: string): Promise<void> {
    return this.resource.commitPrepared(gid);
  }

  /** `ROLLBACK PREPARED`; resolves false when the GID no longer exists (idempotent). */
  rollbackPrepared(gid: string): Promise<boolean> {
    return rollbackPrepared(this.resource.pool, gid);
  }

  /** Prepared transactions of this database, oldest first, optionally only those whose GID starts with `prefix`. */
  listPrepared(prefix?: string): Promise<PreparedInfo[]> {
    return this.resource.listPrepared(prefix);
  }
}
