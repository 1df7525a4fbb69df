/**
 * The same tiny transaction (BEGIN IMMEDIATE; UPDATE one row; COMMIT) through txkit and
 * through hand-written better-sqlite3, in one run, with synchronous=FULL and NORMAL (WAL).
 * Rounds alternate between the two so drift in the machine hits both alike; medians are
 * reported.
 *
 *   npm run bench:sqlite            (TXKIT_BENCH_TX=20000 for more transactions per round)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sqlite } from '../src/sql/sqlite/index.js';

const TX = Number(process.env.TXKIT_BENCH_TX ?? 5000);
const ROUNDS = Number(process.env.TXKIT_BENCH_ROUNDS ?? 7);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function raw(file: string, synchronous: string): Promise<() => Promise<number>> {
  const db = new Database(file, { timeout: 10 });
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  const begin = db.prepare('BEGIN IMMEDIATE');
  const update = db.prepare('UPDATE counters SET n = n + 1 WHERE id = ?');
  const commit = db.prepare('COMMIT');
  const rollback = db.prepare('ROLLBACK');
  // The hand-written equivalent of one txkit transaction: an async unit of work.
  const transaction = async (id: number) => {
    begin.run();
    try {
      update.run(id);
      commit.run();
    } catch (err) {
      if (db.inTransaction) rollback.run();
      throw err;
    }
  };
  return async () => {
    const t0 = performance.now();
    for (let i = 0; i < TX; i++) await transaction(1 + (i % 100));
    return performance.now() - t0;
  };
}

async function txkit(file: string, synchronous: 'full' | 'normal'): Promise<() => Promise<number>> {
  const db = sqlite({ filename: file, synchronous });
  return async () => {
    const t0 = performance.now();
    for (let i = 0; i < TX; i++) {
      await db.transaction((tx) => tx.execute('UPDATE counters SET n = n + 1 WHERE id = ?', [1 + (i % 100)]));
    }
    return performance.now() - t0;
  };
}

async function compare(synchronous: 'full' | 'normal'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'txkit-bench-'));
  try {
    const setup = new Database(join(dir, 'bench.db'));
    setup.pragma('journal_mode = WAL');
    setup.exec('CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
    const insert = setup.prepare('INSERT INTO counters VALUES (?, 0)');
    for (let i = 1; i <= 100; i++) insert.run(i);
    setup.close();
    const runRaw = await raw(join(dir, 'bench.db'), synchronous);
    const runTxkit = await txkit(join(dir, 'bench.db'), synchronous);
    await runRaw(); // warm-up
    await runTxkit();
    const rawTimes: number[] = [];
    const txkitTimes: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      rawTimes.push(await runRaw());
      txkitTimes.push(await runTxkit());
    }
    const rawUs = (median(rawTimes) / TX) * 1000;
    const txkitUs = (median(txkitTimes) / TX) * 1000;
    console.log(
      `synchronous=${synchronous.toUpperCase().padEnd(6)}  raw better-sqlite3 ${rawUs.toFixed(2).padStart(7)} µs/tx   ` +
        `txkit ${txkitUs.toFixed(2).padStart(7)} µs/tx   ratio ${(txkitUs / rawUs).toFixed(3)}x`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `tiny transaction (BEGIN IMMEDIATE; UPDATE 1 row; COMMIT), WAL, ${TX} tx x ${ROUNDS} rounds, medians`,
);
await compare('full');
await compare('normal');
