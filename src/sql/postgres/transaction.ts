/**
 * The `tx` a PostgreSQL transaction callback receives: the engine's Transaction plus
 * `notify()` (delivered only if the transaction commits) and the server's view of it.
 */
import { Transaction } from '../../core/transaction.js';
import { PgTx } from './adapter.js';
import { assertChannel, assertPayload, PG_NOTIFY_SQL } from './channel.js';

export class PostgresTransaction extends Transaction {
  /**
   * Sends a notification as part of this transaction: listeners receive it when (and only
   * if) the transaction commits. Identical channel+payload pairs sent in one transaction
   * are delivered once. A transaction that notified cannot be prepared (two-phase).
   *
   * @example
   * await db.transaction(async (tx) => {
   *   await tx.execute('INSERT INTO jobs (id) VALUES ($1)', [id]);
   *   await tx.notify('jobs', String(id));
   * });
   */
  async notify(channel: string, payload = ''): Promise<void> {
    assertChannel(channel);
    assertPayload(payload);
    const handle = this.physical.handle;
    if (handle instanceof PgTx) handle.markNotified();
    await this.query(PG_NOTIFY_SQL, [channel, payload]);
  }

  /** {@link notify} with `JSON.stringify(value)`. */
  async notifyJson(channel: string, value: unknown): Promise<void> {
    await this.notify(channel, JSON.stringify(value));
  }

  /**
   * The server's transaction id, or null while the transaction has not written anything
   * (`pg_current_xact_id_if_assigned()`, which, unlike `txid_current()`, does not force one).
   */
  async serverTxId(): Promise<string | null> {
    const rows = await this.query<{ id: string | null }>(
      'SELECT pg_current_xact_id_if_assigned()::text AS id',
    );
    return rows[0]?.id ?? null;
  }

  /** The server process id of this transaction's session (see pg_stat_activity, pg_locks). */
  get processId(): number | undefined {
    const handle = this.physical.handle;
    return handle instanceof PgTx ? handle.processId : undefined;
  }
}
