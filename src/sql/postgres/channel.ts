/**
 * LISTEN/NOTIFY channel names and payloads. A channel is an identifier: LISTEN cannot take
 * a bind parameter, so the name is validated and always double-quoted (an unquoted name
 * would also be case-folded, so `NOTIFY MyChan` and `pg_notify('MyChan')` would differ).
 */
import { InvalidIdentifierError, NotifyPayloadTooLargeError } from '../../core/errors.js';
import { classifyPgError } from './errors.js';

/** Letters, digits and `_ . : -`, 1-63 characters (the server's identifier limit). */
export const CHANNEL_PATTERN = /^[A-Za-z0-9_.:-]{1,63}$/;
/** The server rejects payloads of 8000 bytes or more ("payload string too long"). */
export const NOTIFY_PAYLOAD_MAX_BYTES = 7999;

/** Throws {@link InvalidIdentifierError} unless `channel` is a safe channel name. */
export function assertChannel(channel: unknown): asserts channel is string {
  if (typeof channel !== 'string' || !CHANNEL_PATTERN.test(channel)) {
    const shown =
      typeof channel === 'string'
        ? JSON.stringify(channel.length > 70 ? `${channel.slice(0, 70)}…` : channel)
        : String(channel);
    throw new InvalidIdentifierError(
      `invalid channel name ${shown}: use 1-63 characters from A-Z a-z 0-9 _ . : - (the name is matched exactly, case included)`,
    );
  }
}

/** The channel as a quoted identifier for LISTEN/UNLISTEN, after validation. */
export function quoteChannel(channel: string): string {
  assertChannel(channel);
  return `"${channel}"`;
}

/** Throws {@link NotifyPayloadTooLargeError} unless the UTF-8 payload is under 8000 bytes. */
export function assertPayload(payload: unknown): asserts payload is string {
  if (typeof payload !== 'string') {
    throw new NotifyPayloadTooLargeError(`a notification payload must be a string, got ${typeof payload}`);
  }
  const bytes = Buffer.byteLength(payload, 'utf8');
  if (bytes > NOTIFY_PAYLOAD_MAX_BYTES) {
    throw new NotifyPayloadTooLargeError(
      `notification payload is ${bytes} bytes; the limit is ${NOTIFY_PAYLOAD_MAX_BYTES} (send an id and keep the data in a table)`,
    );
  }
}

/** The statement that sends a notification: bound parameters, never formatted SQL. */
export const PG_NOTIFY_SQL = 'SELECT pg_notify($1, $2)';

/** Anything with a `query(sql, params)`: a txkit `Tx`, a `pg.Client`, a pool. */
export interface NotifyTarget {
  query(sql: string, params?: readonly unknown[]): Promise<unknown>;
}

/**
 * Sends a notification through `target`. Given a transaction, the notification is delivered
 * only if that transaction commits, and dropped if it rolls back.
 *
 * @example
 * ```ts
 * await db.transaction(async (tx) => {
 *   await tx.execute('INSERT INTO orders (id) VALUES ($1)', [id]);
 *   await notify(tx, 'orders', String(id)); // sent at COMMIT
 * });
 * ```
 */
export async function notify(target: NotifyTarget, channel: string, payload = ''): Promise<void> {
  assertChannel(channel);
  assertPayload(payload);
  try {
    await target.query(PG_NOTIFY_SQL, [channel, payload]);
  } catch (err) {
    throw classifyPgError(err, { phase: 'notify' });
  }
}
