/**
 * `txkit demo --mysql <url>`: a short tour on a real server, reported as lines.
 * It works on its own scratch table (created and dropped here) and needs only DML and
 * CREATE/DROP rights on the URL's database; the deadlock report also needs PROCESS.
 */
import { DeadlockError, TxkitError } from '../../core/errors.js';
import { formatDeadlock } from './deadlock-format.js';
import { simulateDeadlock } from './deadlock-simulator.js';
import { mysql } from './index.js';
import { waitForLockWait } from './lock-wait-barrier.js';
import { deadlockRetry } from './retry.js';
import { xaRecover, xaRollback } from './xa.js';

/** Runs the demo scenarios against `url`; returns the report lines. */
export async function runMysqlDemo(url: string): Promise<string[]> {
  const out: string[] = [];
  const db = mysql({ uri: url, connectionLimit: 4 });
  const table = `txkit_demo_${process.pid}`;
  const balances = async () =>
    (await db.query<{ id: number; balance: string }>(`SELECT id, balance FROM \`${table}\` ORDER BY id`))
      .map((r) => `${r.id}:${r.balance}`)
      .join(' ');
  try {
    const info = await db.serverInfo();
    const settings = await db.serverLockSettings();
    out.push(`server: ${info.flavor} ${info.version}`);
    out.push(
      `lock settings: innodb_lock_wait_timeout=${settings.innodbLockWaitTimeout}s, ` +
        `rollback_on_timeout=${settings.innodbRollbackOnTimeout}, deadlock_detect=${settings.innodbDeadlockDetect}, ` +
        `default isolation ${settings.isolation}`,
    );
    await db.execute(`DROP TABLE IF EXISTS \`${table}\``);
    await db.execute(
      `CREATE TABLE \`${table}\` (id INT PRIMARY KEY, balance DECIMAL(15,2) NOT NULL, CHECK (balance >= 0)) ENGINE=InnoDB`,
    );
    await db.execute(`INSERT INTO \`${table}\` VALUES (1, 5000.00), (2, 3000.00)`);
    out.push(`accounts: ${await balances()}`);

    // 1. A transfer that locks both rows in one canonical order, with atomic updates.
    await db.transaction(async (tx) => {
      await tx.lockRows(table, [2, 1]);
      await tx.execute(`UPDATE \`${table}\` SET balance = balance - ? WHERE id = ?`, ['100.00', 1]);
      await tx.execute(`UPDATE \`${table}\` SET balance = balance + ? WHERE id = ?`, ['100.00', 2]);
    });
    out.push(`ordered-lock transfer 1→2 of 100.00: ${await balances()}`);

    // 2. A rule violation rolls the whole transfer back.
    const overdraft = await db
      .transaction(async (tx) => {
        await tx.execute(`UPDATE \`${table}\` SET balance = balance + ? WHERE id = ?`, ['99999.00', 2]);
        await tx.execute(`UPDATE \`${table}\` SET balance = balance - ? WHERE id = ?`, ['99999.00', 1]);
      })
      .catch((e: unknown) => e);
    out.push(
      `overdraft refused by CHECK: ${overdraft instanceof TxkitError ? overdraft.code : String(overdraft)}; ` +
        `nothing half-done: ${await balances()}`,
    );

    // 3. A real deadlock, provoked deterministically, and InnoDB's report of it.
    const sim = await simulateDeadlock(db.pool, { table, key: 'id', rows: [1, 2] });
    out.push(
      `deadlock provoked: transaction ${sim.victim} was the victim (${sim.error.code}, SQLSTATE ${sim.error.sqlState})`,
    );
    if (sim.report) for (const line of formatDeadlock(sim.report)) out.push(`  ${line}`);
    else out.push('  (no report: the user lacks the PROCESS privilege)');

    // 4. Opposite-order transfers deadlock; with the deadlock retry preset both still commit.
    let retries = 0;
    const off = db.on('retry', (e) => {
      if (e.error instanceof DeadlockError) retries++;
    });
    // The first attempts meet in the middle (each holds one row, then asks for the other);
    // the barriers make the deadlock certain, the retry makes both commit.
    let aFirst = true;
    let bFirst = true;
    const gate = () => {
      let open!: () => void;
      const opened = new Promise<void>((r) => {
        open = r;
      });
      return { open, opened };
    };
    const aHasRow1 = gate();
    const bHasRow2 = gate();
    let aThread = -1;
    const a = db.transaction(
      async (tx) => {
        aThread = tx.threadId;
        await tx.execute(`UPDATE \`${table}\` SET balance = balance - 10 WHERE id = 1`);
        if (aFirst) {
          aFirst = false;
          aHasRow1.open();
          await bHasRow2.opened;
        }
        await tx.execute(`UPDATE \`${table}\` SET balance = balance + 10 WHERE id = 2`);
      },
      { retry: deadlockRetry },
    );
    const b = db.transaction(
      async (tx) => {
        await tx.execute(`UPDATE \`${table}\` SET balance = balance - 20 WHERE id = 2`);
        if (bFirst) {
          bFirst = false;
          await aHasRow1.opened;
          bHasRow2.open();
          await waitForLockWait(db.pool, aThread);
        }
        await tx.execute(`UPDATE \`${table}\` SET balance = balance + 20 WHERE id = 1`);
      },
      { retry: deadlockRetry },
    );
    await Promise.all([a, b]);
    off();
    out.push(
      `opposite-order transfers with retry: ${retries} deadlock retry, both committed: ${await balances()}`,
    );

    // 5. XA: prepare a branch, find it with XA RECOVER, commit it from another connection.
    const gid = `txkit-demo-${process.pid}`;
    const branch = await db.resource.begin({
      txId: 'demo-xa',
      readOnly: false,
      deferrable: false,
      suspended: [],
      extra: { xa: gid },
    });
    await branch.execute(`UPDATE \`${table}\` SET balance = balance + 1 WHERE id = 1`);
    await branch.prepare?.(gid);
    const recovered = await xaRecover(db.pool, { prefix: 'txkit-demo-' });
    out.push(`XA branch prepared and listed by XA RECOVER: ${recovered.map((x) => x.gtrid).join(', ')}`);
    await db.resource.commitPrepared(gid);
    out.push(`XA branch committed: ${await balances()}`);
  } finally {
    // A branch left prepared would hold its locks (and block DROP TABLE) until decided.
    for (const x of await xaRecover(db.pool, { prefix: `txkit-demo-${process.pid}` }).catch(() => [])) {
      await xaRollback(db.pool, x).catch(() => {});
    }
    await db.execute(`DROP TABLE IF EXISTS \`${table}\``).catch(() => {});
    await db.close();
  }
  return out;
}
