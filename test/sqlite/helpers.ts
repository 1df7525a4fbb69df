/** Temp SQLite databases for tests: a fresh file per test, removed afterwards. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { type SqliteDatabase, type SqliteOptions, sqlite } from '../../src/sql/sqlite/index.js';

const opened: SqliteDatabase[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const db of opened.splice(0)) await db.close().catch(() => {});
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new empty directory, removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'txkit-test-'));
  dirs.push(dir);
  return dir;
}

/** Opens a database on a fresh file (closed after the test). */
export function openDb(options: Partial<SqliteOptions> = {}, dir = tempDir()): SqliteDatabase {
  const db = sqlite({ filename: join(dir, 'test.db'), ...options });
  opened.push(db);
  return db;
}

/** The seed's accounts: Alice 1000, Bob 500, with a CHECK that balances stay >= 0. */
export async function accounts(db: SqliteDatabase): Promise<void> {
  await db.execute(
    'CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance INTEGER NOT NULL CHECK (balance >= 0)) STRICT',
  );
  await db.execute("INSERT INTO accounts (id, name, balance) VALUES (1, 'Alice', 1000), (2, 'Bob', 500)");
}

export async function balances(db: SqliteDatabase): Promise<number[]> {
  const rows = await db.query<{ balance: number }>('SELECT balance FROM accounts ORDER BY id');
  return rows.map((r) => r.balance);
}

/** A promise with its resolve function, for ordering concurrent steps without sleeps. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
