/**
 * Who blocks whom: two sessions waiting behind a third, shown as chains to the root blocker.
 *
 *   TXKIT_PG_URL=postgres://user@127.0.0.1:5432/db npx tsx examples/postgres-monitor.ts
 */
import { postgres } from '../src/sql/postgres/index.js';

const url = process.env.TXKIT_PG_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_PG_URL (or DATABASE_URL)');

const db = postgres({ connectionString: url, max: 5 });
const monitor = db.monitor();
try {
  await db.execute('CREATE TABLE IF NOT EXISTS example_rows (id int PRIMARY KEY, v int)');
  await db.execute('INSERT INTO example_rows VALUES (1, 0) ON CONFLICT DO NOTHING');

  const holder = await db.begin();
  await holder.execute('UPDATE example_rows SET v = v + 1 WHERE id = 1');
  const waiters = [1, 2].map(() =>
    db.transaction(async (tx) => tx.execute('UPDATE example_rows SET v = v + 1 WHERE id = 1'), {
      lockTimeoutMs: 5_000,
    }),
  );
  while ((await monitor.blocked()).length < 2) await new Promise((r) => setTimeout(r, 20));

  for (const c of await monitor.blockingChains())
    console.log(`${c.chain.join(' → ')}  (waiting ${c.waitingMs} ms)`);
  console.log('open transactions:', (await monitor.activity({ minXactAgeMs: 0 })).length);
  await holder.commit();
  await Promise.all(waiters);
} finally {
  await db.execute('DROP TABLE IF EXISTS example_rows');
  await db.close();
}
