/**
 * Two-phase commit primitives on one PostgreSQL server (needs max_prepared_transactions > 0):
 * prepare with a validated GID, list what is prepared, then commit it. A real coordinator
 * must log its decision durably before phase 2; this only shows the building blocks.
 *
 *   TXKIT_PG_URL=postgres://user@127.0.0.1:5432/db npx tsx examples/postgres-two-phase.ts
 */
import { makeGid, postgres } from '../src/sql/postgres/index.js';

const url = process.env.TXKIT_PG_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_PG_URL (or DATABASE_URL)');

const db = postgres({ connectionString: url });
try {
  await db.preflightPrepared(); // fails clearly when max_prepared_transactions = 0
  await db.execute('CREATE TABLE IF NOT EXISTS example_ledger (id serial PRIMARY KEY, note text NOT NULL)');

  const gid = makeGid('example', 'ledger'); // example:<uuid>:ledger
  const tx = await db.begin();
  await tx.execute('INSERT INTO example_ledger (note) VALUES ($1)', ['prepared, not yet committed']);
  await tx.physical.handle.prepare!(gid); // phase 1: the vote; the connection goes back to the pool

  for (const p of await db.listPrepared('example:')) console.log(`prepared ${p.gid}, ${p.ageMs} ms old`);
  await db.commitPrepared(gid); // phase 2 (after the decision is logged)
  console.log('rolled back again?', await db.rollbackPrepared(gid)); // false: already resolved
} finally {
  await db.execute('DROP TABLE IF EXISTS example_ledger');
  await db.close();
}
