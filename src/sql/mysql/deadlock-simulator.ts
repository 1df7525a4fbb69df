/**
 * Provokes a real two-transaction deadlock, deterministically: T1 locks row 1, T2 locks
 * row 2, T2 asks for row 1 (and waits), and only once InnoDB shows T2 in `LOCK WAIT`
 * does T1 ask for row 2, closing the cycle. No sleeps decide the order.
 * Used by tests, the demo and the CLI; it only takes locks and rolls both back.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { DatabaseError, DeadlockError } from '../../core/errors.js';
import type { DeadlockReport } from './deadlock-parser.js';
import { toTxkitError } from './errors.js';
import { LockInspector } from './lock-inspector.js';
import { waitForLockWait } from './lock-wait-barrier.js';
import { quoteName, quoteTable } from './names.js';

export interface SimulateDeadlockOptions {
  table: string;
  /** Column that identifies the rows. */
  key: string;
  /** Two key values of existing rows. */
  rows: readonly [string | number, string | number];
  /** Read the report from SHOW ENGINE INNODB STATUS afterwards (needs PROCESS). Default true. */
  captureReport?: boolean;
  /** Bound on waiting for T2 to block. Default 5000 ms. */
  waitMs?: number;
}

export interface SimulateDeadlockResult {
  /** Which transaction InnoDB rolled back. */
  victim: 1 | 2;
  winner: 1 | 2;
  error: DeadlockError;
  threadIds: [number, number];
  report?: DeadlockReport;
}

/**
 * @example
 * const { victim, error } = await simulateDeadlock(pool, { table: 'accounts', key: 'id', rows: [1, 2] });
 */
export async function simulateDeadlock(
  pool: Pool,
  opts: SimulateDeadlockOptions,
): Promise<SimulateDeadlockResult> {
  const sql = `SELECT ${quoteName(opts.key, 'key column')} FROM ${quoteTable(opts.table)} WHERE ${quoteName(
    opts.key,
    'key column',
  )} = ? FOR UPDATE`;
  const [k1, k2] = opts.rows;
  let c1: PoolConnection | undefined;
  let c2: PoolConnection | undefined;
  try {
    c1 = await pool.getConnection();
    c2 = await pool.getConnection();
    await c1.query('START TRANSACTION');
    await c2.query('START TRANSACTION');
    await c1.query(sql, [k1]);
    await c2.query(sql, [k2]);
    const second = c2.query(sql, [k1]).then(
      () => null,
      (e: unknown) => e,
    );
    await waitForLockWait(pool, c2.threadId, { timeoutMs: opts.waitMs ?? 5_000 });
    const first = await c1.query(sql, [k2]).then(
      () => null,
      (e: unknown) => e,
    );
    const secondErr = await second;
    const errs = [first, secondErr].map((e) => (e === null ? null : toTxkitError(e)));
    const victimIdx = errs.findIndex((e) => e instanceof DeadlockError);
    const other = errs[1 - victimIdx];
    if (victimIdx < 0 || other !== null) {
      throw errs.find((e) => e !== null) ?? new DatabaseError('the simulated deadlock did not happen');
    }
    const victim = (victimIdx + 1) as 1 | 2;
    const result: SimulateDeadlockResult = {
      victim,
      winner: victim === 1 ? 2 : 1,
      error: errs[victimIdx] as DeadlockError,
      threadIds: [c1.threadId, c2.threadId],
    };
    if (opts.captureReport ?? true) {
      try {
        const report = await new LockInspector(pool).latestDeadlock();
        if (report) result.report = report;
      } catch {
        // Without PROCESS there is no report; the deadlock itself is still real.
      }
    }
    return result;
  } finally {
    for (const c of [c1, c2]) {
      if (!c) continue;
      try {
        await c.query('ROLLBACK');
        c.release();
      } catch {
        c.destroy();
      }
    }
  }
}
