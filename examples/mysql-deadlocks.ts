/**
 * Provoke a real deadlock, read InnoDB's report of it, and watch for deadlocks with the
 * monitor (each deadlock is reported once). Needs the PROCESS privilege for the report.
 *
 *   TXKIT_MYSQL_URL=mysql://user:pass@127.0.0.1:3306/db npx tsx examples/mysql-deadlocks.ts
 */
import { formatDeadlock, mysql, simulateDeadlock } from '../src/sql/mysql/index.js';

const url = process.env.TXKIT_MYSQL_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_MYSQL_URL (or DATABASE_URL)');

const db = mysql({ uri: url, connectionLimit: 4 });
const monitor = db.deadlockMonitor({ pollIntervalMs: 1_000 });
monitor.on('deadlock', ({ report, missedCount }) => {
  console.log(`monitor: new deadlock (${report.transactions.length} transactions, ${missedCount} missed)`);
});
try {
  await db.execute('CREATE TABLE IF NOT EXISTS example_rows (id INT PRIMARY KEY, v INT NOT NULL)');
  await db.execute('REPLACE INTO example_rows VALUES (1, 0), (2, 0)');
  await monitor.pollOnce(); // baseline: older deadlocks are not reported

  const { victim, error, report } = await simulateDeadlock(db.pool, {
    table: 'example_rows',
    key: 'id',
    rows: [1, 2],
  });
  console.log(`transaction ${victim} was rolled back: ${error.code} (errno ${error.driverCode})`);
  if (report) for (const line of formatDeadlock(report)) console.log(line);

  await monitor.pollOnce(); // reports it
  await monitor.pollOnce(); // does not report it again
  console.log('monitor stats:', monitor.stats());
} finally {
  await monitor.stop();
  await db.close();
}
