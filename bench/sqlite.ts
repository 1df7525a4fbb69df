/**
 * The same tiny transaction (BEGIN IMMEDIATE; UPDATE one row; COMMIT) through txkit and
 * through hand-written better-sqlite3, in one run, with synchronous=FULL and NORMAL (WAL).
 *
 * Each side has its own database file (two connections on one file would make each pay for
 * re-reading the other's writes). They alternate in short blocks, in ABBA order, so both see
 * the same disk: fsync latency on a shared machine swings by 2x within seconds. Each side's
 * time is summed over its transactions; the per-block ratios show the spread.
 *
 *   npm run bench:sqlite            (TXKIT_BENCH_TX=20000 for more transactions)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sqlite } from '../dist/sql/sqlite/index.js';

const TX = Number(process.env.TXKIT_BENCH_TX ?? 10_000);
const BLOCK = 250;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function compare(synchronous: 'full' | 'normal'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'txkit-bench-'));
  const file = (name: string) => {
    const path = join(dir, name);
    const setup = new Database(path);
    setup.pragma('journal_mode = WAL');
    setup.exec('CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
    const insert = setup.prepare('INSERT INTO counters VALUES (?, 0)');
    for (let i = 1; i <= 100; i++) insert.run(i);
    setup.close();
    return path;
  };
  try {
    // The hand-written equivalent of one txkit transaction: an async unit of work.
    const raw = new Database(file('raw.db'), { timeout: 10 });
    raw.pragma(`synchronous = ${synchronous}`);
    const begin = raw.prepare('BEGIN IMMEDIATE');
    const update = raw.prepare('UPDATE counters SET n = n + 1 WHERE id = ?');
    const commit = raw.prepare('COMMIT');
    const rollback = raw.prepare('ROLLBACK');
    const rawTransaction = async (id: number) => {
      begin.run();
      try {
        update.run(id);
        commit.run();
      } catch (err) {
        if (raw.inTransaction) rollback.run();
        throw err;
      }
    };
    const db = sqlite({ filename: file('txkit.db'), synchronous });
    const txkitTransaction = (id: number) =>
      db.transaction((tx) => tx.execute('UPDATE counters SET n = n + 1 WHERE id = ?', [id]));

    for (let i = 0; i < 1000; i++) {
      await rawTransaction(1 + (i % 100)); // warm-up
      await txkitTransaction(1 + (i % 100));
    }
    const run = async (side: 'raw' | 'txkit') => {
      const t0 = performance.now();
      for (let i = 0; i < BLOCK; i++) {
        if (side === 'raw') await rawTransaction(1 + (i % 100));
        else await txkitTransaction(1 + (i % 100));
      }
      return performance.now() - t0;
    };
    let rawTotal = 0;
    let txkitTotal = 0;
    const blockRatios: number[] = [];
    for (let b = 0; b < TX / BLOCK; b++) {
      const first = b % 2 === 0 ? 'raw' : 'txkit';
      const a = await run(first);
      const c = await run(first === 'raw' ? 'txkit' : 'raw');
      const [rawMs, txkitMs] = first === 'raw' ? [a, c] : [c, a];
      rawTotal += rawMs;
      txkitTotal += txkitMs;
      blockRatios.push(txkitMs / rawMs);
    }
    raw.close();
    await db.close();
    const rawUs = (rawTotal / TX) * 1000;
    const txkitUs = (txkitTotal / TX) * 1000;
    const sorted = [...blockRatios].sort((a, b) => a - b);
    console.log(
      `synchronous=${synchronous.toUpperCase().padEnd(6)}  raw better-sqlite3 ${rawUs.toFixed(2).padStart(7)} µs/tx   ` +
        `txkit ${txkitUs.toFixed(2).padStart(7)} µs/tx   ratio ${(txkitUs / rawUs).toFixed(3)}x   ` +
        `(per ${BLOCK}-tx block: median ${median(blockRatios).toFixed(3)}, range ${sorted[0]!.toFixed(3)}–${sorted.at(-1)!.toFixed(3)})`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `tiny transaction (BEGIN IMMEDIATE; UPDATE 1 row; COMMIT), WAL, ${TX} transactions each, interleaved`,
);
await compare('full');
await compare('normal');
