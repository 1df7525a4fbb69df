/**
 * The SQLite Database: the engine on a SqliteResource, plus SQLite's own tools.
 */
import { Database } from '../../core/database.js';
import type { Transaction } from '../../core/transaction.js';
import { type BatchOptions, type BatchResult, batch } from '../shared/batch.js';
import type { SqliteResource } from './adapter.js';
import type { EffectivePragmas } from './connection.js';

export type CheckpointMode = 'PASSIVE' | 'FULL' | 'RESTART' | 'TRUNCATE';

export class SqliteDatabase extends Database<SqliteResource, Transaction> {
  /** The pragma values the writer connection really runs with (read back at open). */
  get effective(): EffectivePragmas {
    return this.resource.writer.effective;
  }

  /** True while the writer connection has a transaction open (informational). */
  get inTransaction(): boolean {
    return this.resource.writer.inTransaction;
  }

  /** Writes rows in chunks, each chunk its own transaction. See {@link batch}. */
  batch<Row>(rows: readonly Row[], options: BatchOptions<Row>): Promise<BatchResult> {
    return batch(this, rows, options);
  }

  /** Runs a WAL checkpoint on the writer connection. */
  async checkpoint(
    mode: CheckpointMode = 'PASSIVE',
  ): Promise<{ busy: number; log: number; checkpointed: number }> {
    if (!['PASSIVE', 'FULL', 'RESTART', 'TRUNCATE'].includes(mode)) {
      throw new TypeError(`checkpoint mode must be PASSIVE, FULL, RESTART or TRUNCATE, got ${String(mode)}`);
    }
    const rows = await this.query<{ busy: number; log: number; checkpointed: number }>(
      `PRAGMA wal_checkpoint(${mode})`,
    );
    return rows[0]!;
  }
}
