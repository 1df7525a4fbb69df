/**
 * `txkit/sqlite` — transactions on an embedded SQLite file (better-sqlite3).
 *
 * @example
 * import { sqlite } from 'txkit/sqlite';
 * const db = sqlite({ filename: 'app.db' });
 * await db.transaction(async (tx) => {
 *   await tx.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', [100, 1]);
 *   await tx.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', [100, 2]);
 * }, { retry: true });
 */
import { SqliteResource } from './adapter.js';
import { SqliteDatabase } from './database.js';
import { resolveSqliteOptions, type SqliteOptions } from './options.js';

/** Opens a SQLite database. Pragmas are validated, applied at open and read back. */
export function sqlite(options: SqliteOptions): SqliteDatabase {
  const resolved = resolveSqliteOptions(options);
  return new SqliteDatabase(new SqliteResource(resolved), resolved.database, {
    transactionOptionKeys: ['beginMode'],
  });
}

export { BatchError, type BatchOptions, type BatchResult, batch } from '../shared/batch.js';
export { SQLITE_CAPABILITIES, SqliteResource } from './adapter.js';
export type { EffectivePragmas } from './connection.js';
export { type CheckpointMode, SqliteDatabase } from './database.js';
export { classifySqliteError } from './errors.js';
export type { BeginMode, JournalMode, SqliteOptions, Synchronous, TempStore } from './options.js';
