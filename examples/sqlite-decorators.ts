/**
 * @Transactional on class methods: stacked methods share one transaction, and the
 * ambient transaction reaches code that only knows the database.
 *
 *   npx tsx examples/sqlite-decorators.ts
 */
import { currentTransaction, Transactional } from 'txkit';
import { type SqliteDatabase, sqlite } from 'txkit/sqlite';

class Accounts {
  constructor(readonly db: SqliteDatabase) {}

  @Transactional((self: Accounts) => self.db, { propagation: 'mandatory' })
  async move(from: number, to: number, amountCents: number): Promise<void> {
    const debit = await this.db.execute(
      'UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?',
      [amountCents, from, amountCents],
    );
    if (debit.rowsAffected !== 1) throw new Error(`account ${from} cannot pay ${amountCents}`);
    await this.db.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amountCents, to]);
  }

  @Transactional((self: Accounts) => self.db, { retry: true, name: 'payday' })
  async payday(): Promise<string> {
    await this.move(1, 2, 100);
    await this.move(1, 3, 100);
    return currentTransaction(this.db)!.name ?? '';
  }
}

const db = sqlite({ filename: ':memory:' });
await db.execute(
  'CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))',
);
await db.execute('INSERT INTO accounts VALUES (1, 250), (2, 0), (3, 0)');
let begins = 0;
db.on('begin', () => begins++);
const accounts = new Accounts(db);
console.log('transaction name:', await accounts.payday());
await accounts.payday().catch((e: Error) => console.log('second payday rolled back:', e.message));
console.log(
  'balances:',
  (await db.query<{ balance: number }>('SELECT balance FROM accounts ORDER BY id'))
    .map((r) => r.balance)
    .join(','),
);
console.log('physical transactions:', begins);
await db.close();
