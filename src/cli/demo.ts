/**
 * `txkit demo`: what txkit guarantees, shown on an embedded SQLite file in a few seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TxkitError } from '../core/errors.js';
import { type SqliteDatabase, sqlite } from '../sql/sqlite/index.js';
import { runWorkers } from './spawn-workers.js';

export interface DemoOptions {
  /** Database file; default: a fresh file in a temp directory, removed afterwards. */
  file?: string;
  workers?: number;
  transfersPerWorker?: number;
  log?: (line: string) => void;
}

const cents = (n: number) => (n / 100).toFixed(2);

async function balances(db: SqliteDatabase): Promise<number[]> {
  return (await db.query<{ balance: number }>('SELECT balance FROM accounts ORDER BY id')).map(
    (r) => r.balance,
  );
}

/** Runs every scenario; throws if any guarantee did not hold. Returns the report lines. */
export async function runDemo(options: DemoOptions = {}): Promise<string[]> {
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    options.log?.(line);
  };
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`demo assertion failed: ${what}`);
  };
  const dir = options.file ? undefined : mkdtempSync(join(tmpdir(), 'txkit-demo-'));
  const file = options.file ?? join(dir!, 'bank.db');
  const started = performance.now();
  try {
    let db = sqlite({ filename: file });
    say(`txkit demo on ${file} (journal ${db.effective.journalMode}, synchronous FULL)`);
    await db.execute('DROP TABLE IF EXISTS transfers');
    await db.execute('DROP TABLE IF EXISTS accounts');
    await db.execute(
      'CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL CHECK (balance >= 0)) STRICT',
    );
    await db.execute(
      'CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER) STRICT',
    );
    await db.execute(
      "INSERT INTO accounts (id, owner, balance) VALUES (1, 'Alice', 100000), (2, 'Bob', 50000)",
    );

    // 1. Atomicity
    await db
      .transaction(async (tx) => {
        await tx.execute('UPDATE accounts SET balance = balance - 10000 WHERE id = 1');
        throw new Error('system failure between debit and credit');
      })
      .catch(() => {});
    const [alice, bob] = await balances(db);
    check(alice === 100000 && bob === 50000, 'failed transfer rolled back');
    say(`1. atomic transfer failed midway -> rolled back: Alice ${cents(alice!)}, Bob ${cents(bob!)}`);

    // 2. Consistency: a CHECK violation is a typed error and changes nothing
    const err = await db
      .transaction((tx) => tx.execute('UPDATE accounts SET balance = balance - 60000 WHERE id = 2'))
      .catch((e: unknown) => e);
    check(err instanceof TxkitError && err.code === 'E_CHECK', 'CHECK violation typed');
    const [, bobAfter] = await balances(db);
    check(bobAfter === 50000, 'balance unchanged after CHECK violation');
    say(
      `2. overdraft refused: ${(err as TxkitError).name} (${(err as TxkitError).code}), Bob still ${cents(bobAfter!)}`,
    );

    // 3. Concurrency: separate processes on one file doing read-then-write transfers in
    //    BEGIN DEFERRED transactions, the pattern that conflicts (SQLITE_BUSY, BUSY_SNAPSHOT)
    //    and loses updates without a transaction; txkit retries the whole transaction.
    const workers = options.workers ?? 4;
    const perWorker = options.transfersPerWorker ?? 750;
    await db.execute('DELETE FROM accounts');
    await db.batch(
      Array.from({ length: 20 }, (_, i) => [i + 1, `acct-${i + 1}`, 10_000]),
      { statement: 'INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)' },
    );
    await db.close();
    const t0 = performance.now();
    const reports = await runWorkers(file, workers, perWorker, 'deferred');
    const seconds = (performance.now() - t0) / 1000;
    db = sqlite({ filename: file });
    const [sum] = await db.query<{ total: number; moved: number }>(
      'SELECT (SELECT sum(balance) FROM accounts) AS total, (SELECT count(*) FROM transfers) AS moved',
    );
    const committed = reports.reduce((s, r) => s + r.committed, 0);
    const retries = reports.reduce((s, r) => s + r.retries, 0);
    const byCode: Record<string, number> = {};
    for (const r of reports)
      for (const [k, v] of Object.entries(r.retriesByCode)) byCode[k] = (byCode[k] ?? 0) + v;
    check(sum!.total === 200_000, 'total balance preserved');
    check(committed === workers * perWorker, 'every transfer finished');
    say(
      `3. ${workers} processes x ${perWorker} random transfers in ${seconds.toFixed(1)} s: ` +
        `${sum!.moved} moved money, total still ${cents(sum!.total)}, ${retries} conflicts retried` +
        (retries
          ? ` (${Object.entries(byCode)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')})`
          : ''),
    );

    // 4. Nested savepoints: the seed's order flow
    await db.execute(
      'CREATE TABLE IF NOT EXISTS inventory (product TEXT PRIMARY KEY, stock INTEGER NOT NULL CHECK (stock >= 0))',
    );
    await db.execute(
      'CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL, status TEXT NOT NULL)',
    );
    await db.execute('DELETE FROM inventory');
    await db.execute(
      "INSERT INTO inventory VALUES ('laptop', 10), ('mouse', 20), ('keyboard', 15), ('monitor', 8)",
    );
    const items: [string, number, number][] = [
      ['laptop', 1, 599_900],
      ['mouse', 2, 19_900],
      ['keyboard', 1, 59_900],
    ];
    const orderTotal = await db.transaction(async (tx) => {
      const order = await tx.execute("INSERT INTO orders (total, status) VALUES (0, 'pending')");
      let subtotal = 0;
      for (const [product, qty, price] of items) {
        const r = await tx.execute(
          'UPDATE inventory SET stock = stock - ? WHERE product = ? AND stock >= ?',
          [qty, product, qty],
        );
        if (r.rowsAffected !== 1) throw new Error(`insufficient stock: ${product}`);
        subtotal += qty * price;
      }
      await tx.execute('UPDATE orders SET total = ? WHERE id = ?', [subtotal, order.lastInsertId]);
      // The discount step is optional: if it fails, only its savepoint rolls back.
      await db
        .transaction(async (discount) => {
          await discount.execute('UPDATE orders SET total = total * 9 / 10 WHERE id = ?', [
            order.lastInsertId,
          ]);
          throw new Error('discount service unavailable');
        })
        .catch(() => {});
      await db.transaction(async () => {
        if (subtotal > 500_000)
          await db.execute('UPDATE orders SET total = total * 9 / 10 WHERE id = ?', [order.lastInsertId]);
      });
      await tx.execute("UPDATE orders SET status = 'confirmed' WHERE id = ?", [order.lastInsertId]);
      const [row] = await tx.query<{ total: number }>('SELECT total FROM orders WHERE id = ?', [
        order.lastInsertId,
      ]);
      return row!.total;
    });
    const stock = (await db.query<{ stock: number }>('SELECT stock FROM inventory ORDER BY rowid')).map(
      (r) => r.stock,
    );
    check(orderTotal === 629_640 && stock.join() === '9,18,14,8', 'order flow');
    say(
      `4. order with nested savepoints: failed discount step rolled back alone, 10% discount applied once: ` +
        `total ${cents(orderTotal)}, stock ${stock.join('/')}`,
    );

    // 5. Durability: close, reopen, verify
    const snapshot = async () =>
      JSON.stringify([
        await balances(db),
        await db.query('SELECT * FROM transfers ORDER BY id'),
        await db.query('SELECT * FROM orders'),
      ]);
    const before = await snapshot();
    await db.close();
    db = sqlite({ filename: file });
    const after = await snapshot();
    await db.close();
    check(before === after, 'durable after reopen');
    say(
      `5. closed and reopened: every balance, transfer and order read back identical (${after.length} bytes compared)`,
    );
    say(`all guarantees held in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return lines;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}
