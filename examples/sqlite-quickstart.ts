/**
 * A transfer between two accounts, retried on contention, with a receipt after commit.
 *
 *   npx tsx examples/sqlite-quickstart.ts
 */
import { TxkitError } from 'txkit';
import { sqlite } from 'txkit/sqlite';

const db = sqlite({ filename: ':memory:' });
await db.execute(
  'CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL CHECK (balance >= 0))',
);
await db.execute("INSERT INTO accounts VALUES (1, 'Alice', 10000), (2, 'Bob', 5000)");

async function transfer(from: number, to: number, cents: number): Promise<void> {
  await db.transaction(
    async (tx) => {
      await tx.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', [cents, from]);
      await tx.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', [cents, to]);
      tx.afterCommit(() => console.log(`receipt: ${cents} cents from ${from} to ${to}`));
    },
    { retry: true, timeoutMs: 2_000, name: 'transfer' },
  );
}

await transfer(1, 2, 2500);
try {
  await transfer(2, 1, 100_000); // more than Bob has: the CHECK constraint refuses it
} catch (err) {
  if (err instanceof TxkitError) console.log(`refused: ${err.code} (${err.constraint})`);
}
console.log(await db.query('SELECT owner, balance FROM accounts ORDER BY id'));
console.log('committed', db.metrics().committed, 'rolled back', db.metrics().rolledBack);
await db.close();
