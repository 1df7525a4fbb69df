/**
 * A money transfer on PostgreSQL: serializable, retried on serialization failures and
 * deadlocks, with a lock timeout, and a notification delivered only if it commits.
 *
 *   TXKIT_PG_URL=postgres://user@127.0.0.1:5432/db npx tsx examples/postgres-transfer.ts
 */
import { CheckViolationError } from '../src/core/errors.js';
import { postgres } from '../src/sql/postgres/index.js';

const url = process.env.TXKIT_PG_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_PG_URL (or DATABASE_URL)');

const db = postgres({ connectionString: url });

async function transfer(from: number, to: number, cents: number): Promise<void> {
  await db.transaction(
    async (tx) => {
      // Touch rows in id order, whatever the direction: opposite orders would deadlock.
      for (const id of [from, to].sort((a, b) => a - b)) {
        const delta = id === from ? -cents : cents;
        await tx.execute('UPDATE example_accounts SET balance = balance + $1 WHERE id = $2', [delta, id]);
      }
      await tx.notify('transfers', JSON.stringify({ from, to, cents }));
    },
    {
      name: 'transfer',
      isolation: 'serializable',
      // Ten writers on two rows collide a lot: allow more attempts, spread out with full jitter.
      retry: { maxAttempts: 20, baseDelayMs: 5, maxDelayMs: 200, jitter: 'full' },
      lockTimeoutMs: 5_000,
      timeoutMs: 10_000,
    },
  );
}

try {
  await db.execute('DROP TABLE IF EXISTS example_accounts');
  await db.execute(
    'CREATE TABLE example_accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))',
  );
  await db.execute('INSERT INTO example_accounts VALUES (1, 100000), (2, 50000)');
  // Ten transfers at once in both directions: some are retried, none is lost.
  await Promise.all(Array.from({ length: 10 }, (_, i) => transfer(i % 2 ? 1 : 2, i % 2 ? 2 : 1, 1000)));
  try {
    await transfer(2, 1, 10_000_000);
  } catch (err) {
    if (!(err instanceof CheckViolationError)) throw err;
    console.log(`refused: ${err.constraint} (nothing moved)`);
  }
  console.log(await db.query('SELECT id, balance FROM example_accounts ORDER BY id'));
  const m = db.metrics();
  // Concurrent writers at SERIALIZABLE fail with 40001 and are retried; nothing is lost.
  console.log({
    committed: m.committed,
    retries: m.retries,
    deadlocks: m.deadlocks,
    serializationFailures: m.serializationFailures,
  });
} finally {
  await db.execute('DROP TABLE IF EXISTS example_accounts');
  await db.close();
}
