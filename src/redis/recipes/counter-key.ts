/** Reading and setting the integer keys the recipes keep (stock levels, balances). */
import { InvalidArgumentError } from '../../core/errors.js';
import type { RedisTx } from '../redis-tx.js';

/** Sets `key` to `value`, an integer >= 0 (`what` names it in the error). */
export async function setCount(tx: RedisTx, key: string, value: number, what: string): Promise<void> {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what} must be an integer >= 0, got ${String(value)}`);
  }
  const r = await tx.multi((m) => m.set(key, value));
  if (r.status !== 'committed') throw new Error(`setting ${key} failed: ${r.status}`);
  const reply = r.replies[0];
  if (reply && !reply.ok) throw reply.error;
}

/** The integer at `key`, or null when it does not exist. */
export async function readCount(tx: RedisTx, key: string): Promise<number | null> {
  const r = await tx.pipeline((p) => p.get(key));
  const reply = r.replies[0]!;
  if (!reply.ok)
    throw reply.status === 'not-attempted' ? new Error(`reading ${key} was not sent`) : reply.error;
  return reply.value === null ? null : Number(reply.value);
}
