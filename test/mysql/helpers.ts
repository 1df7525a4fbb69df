/**
 * Shared helpers for the MySQL/MariaDB tests: connections to the test server and a
 * barrier that waits until a connection is blocked on a row lock (no sleeps).
 */
import type mysql from 'mysql2/promise';
import mysql2 from 'mysql2/promise';
import { waitForLockWait as waitForLock } from '../../src/sql/mysql/lock-wait-barrier.js';

export const url = process.env.TXKIT_MYSQL_URL;
export const noProcessUrl = process.env.TXKIT_MYSQL_NOPROC_URL;
export const adminUrl = process.env.TXKIT_MYSQL_ADMIN_URL;

export async function connect(u = url): Promise<mysql.Connection> {
  if (!u) throw new Error('TXKIT_MYSQL_URL is not set');
  return mysql2.createConnection(u);
}

/** Waits (bounded) until thread `threadId` waits for a row lock, as InnoDB reports it. */
export function waitForLockWait(observer: mysql.Connection, threadId: number, ms = 5_000): Promise<void> {
  return waitForLock(observer, threadId, { timeoutMs: ms });
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
export async function caught(fn: () => Promise<unknown>): Promise<any> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, got none');
}

/** A table name unique to this test file and run, so parallel files never collide. */
export function tableName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
}

/** Creates `name(id INT PK, v INT NOT NULL CHECK v >= 0)` with rows id 1..n, v = 100 each. */
export async function accountsTable(c: mysql.Connection, name: string, n = 3): Promise<void> {
  await c.query(`DROP TABLE IF EXISTS \`${name}\``);
  await c.query(
    `CREATE TABLE \`${name}\` (id INT PRIMARY KEY, v INT NOT NULL, CONSTRAINT ${name}_pos CHECK (v >= 0)) ENGINE=InnoDB`,
  );
  const rows = Array.from({ length: n }, (_, i) => [i + 1, 100]);
  await c.query(`INSERT INTO \`${name}\` (id, v) VALUES ?`, [rows]);
}
