/**
 * Money transfer on MySQL / MariaDB: rows locked in one canonical order, atomic updates,
 * a CHECK constraint that refuses overdrafts, and the deadlock retry preset.
 *
 *   TXKIT_MYSQL_URL=mysql://user:pass@127.0.0.1:3306/db npx tsx examples/mysql-transfer.ts
 */
import { deadlockRetry, mysql } from '../src/sql/mysql/index.js';

const url = process.env.TXKIT_MYSQL_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_MYSQL_URL (or DATABASE_URL)');

const db = mysql({ uri: url, connectionLimit: 5 });

/** Moves `amount` (a decimal string, never a float) from one account to another. */
async function transfer(from: number, to: number, amount: string): Promise<void> {
  if (from === to) throw new Error('cannot transfer to the same account');
  await db.transaction(
    async (tx) => {
      // Both rows, locked in ascending id order whatever the direction: no AB/BA deadlock.
      await tx.lockRows('example_accounts', [from, to]);
      await tx.execute('UPDATE example_accounts SET balance = balance - ? WHERE id = ?', [amount, from]);
      await tx.execute('UPDATE example_accounts SET balance = balance + ? WHERE id = ?', [amount, to]);
    },
    { retry: deadlockRetry, lockWaitTimeoutSec: 5, name: 'transfer' },
  );
}

try {
  await db.execute(
    'CREATE TABLE IF NOT EXISTS example_accounts (id INT PRIMARY KEY, balance DECIMAL(15,2) NOT NULL, CHECK (balance >= 0))',
  );
  await db.execute('REPLACE INTO example_accounts VALUES (1, 10000.00), (2, 5000.00)');
  await Promise.all([transfer(1, 2, '1000.00'), transfer(2, 1, '250.00'), transfer(1, 2, '50.00')]);
  await transfer(2, 1, '99999.00').catch((err) => console.log(`refused: ${err.code}`)); // E_CHECK
  console.log(await db.query('SELECT id, balance FROM example_accounts ORDER BY id'));
} finally {
  await db.close();
}
