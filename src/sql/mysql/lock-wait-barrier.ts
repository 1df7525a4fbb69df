/**
 * "Is connection N blocked on a row lock right now?" — answered from the TRANSACTIONS
 * section of `SHOW ENGINE INNODB STATUS`, which the server builds on demand.
 *
 * Not from `information_schema.INNODB_TRX`: InnoDB serves the I_S lock tables from a
 * cache that it refreshes only when the previous read is more than 100 ms old, so a
 * poller reading faster than that (or two pollers taking turns) sees the same stale rows
 * forever (observed on MariaDB 10.11.19).
 */
import { TxkitError } from '../../core/errors.js';
import { statusTextFromRow } from './deadlock-parser.js';
import { type MysqlQueryable, rows } from './server-info.js';

/** Thread ids of the transactions the status text shows in `LOCK WAIT`. */
export function waitingThreadIds(statusText: string): number[] {
  const start = statusText.search(/^TRANSACTIONS\s*$/m);
  if (start < 0) return [];
  const section = statusText.slice(start);
  const out: number[] = [];
  for (const block of section.split(/^---TRANSACTION /m).slice(1)) {
    if (!/^LOCK WAIT /m.test(block)) continue;
    const m = / thread id (\d+),/.exec(block);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

/** True when connection `threadId` waits for a lock (needs PROCESS). */
export async function isWaitingForLock(q: MysqlQueryable, threadId: number): Promise<boolean> {
  const [row] = await rows(q, 'SHOW ENGINE INNODB STATUS', [], undefined, 'PROCESS');
  return waitingThreadIds(statusTextFromRow(row) ?? '').includes(threadId);
}

/** Waits until connection `threadId` is blocked on a lock, checking every `everyMs` (default 10). */
export async function waitForLockWait(
  q: MysqlQueryable,
  threadId: number,
  opts: { timeoutMs?: number; everyMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await isWaitingForLock(q, threadId)) return;
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 10));
  }
  throw new TxkitError(
    'E_TIMEOUT',
    `connection ${threadId} did not start waiting for a lock within ${timeoutMs} ms`,
  );
}
