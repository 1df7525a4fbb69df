/**
 * A worker process for the demo and the multi-process tests: performs random transfers
 * between accounts of a SQLite file with read-modify-write (the pattern that loses
 * updates without a transaction) and retry, then prints one JSON line of counts.
 *
 * Usage: node transfer-worker.js <file> <transfers> <seed> [beginMode]
 * With TXKIT_WORKER_BARRIER=1 it prints "ready" and waits for a line on stdin before
 * starting, so that several workers really run at the same time.
 */
import { pathToFileURL } from 'node:url';
import { sqlite } from '../sql/sqlite/index.js';
import type { BeginMode } from '../sql/sqlite/options.js';

export interface WorkerReport {
  committed: number;
  retries: number;
  retriesByCode: Record<string, number>;
}

/** A small deterministic PRNG (mulberry32) so runs are reproducible from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runTransfers(
  file: string,
  transfers: number,
  seed: number,
  beginMode: BeginMode,
): Promise<WorkerReport> {
  const db = sqlite({ filename: file, busyTimeoutMs: 20_000 });
  const report: WorkerReport = { committed: 0, retries: 0, retriesByCode: {} };
  db.on('retry', (e) => {
    report.retries++;
    const code = (e.error as { code?: string }).code ?? 'other';
    report.retriesByCode[code] = (report.retriesByCode[code] ?? 0) + 1;
  });
  const random = prng(seed);
  const [{ n }] = (await db.query<{ n: number }>('SELECT count(*) AS n FROM accounts')) as [{ n: number }];
  try {
    for (let i = 0; i < transfers; i++) {
      const from = 1 + Math.floor(random() * n);
      const to = 1 + ((from + Math.floor(random() * (n - 1))) % n);
      const amount = 1 + Math.floor(random() * 50);
      await db.transaction(
        async (tx) => {
          const [src] = await tx.query<{ balance: number }>('SELECT balance FROM accounts WHERE id = ?', [
            from,
          ]);
          if (!src || src.balance < amount) return; // insufficient funds: nothing to do
          const [dst] = await tx.query<{ balance: number }>('SELECT balance FROM accounts WHERE id = ?', [
            to,
          ]);
          await tx.execute('UPDATE accounts SET balance = ? WHERE id = ?', [src.balance - amount, from]);
          await tx.execute('UPDATE accounts SET balance = ? WHERE id = ?', [dst!.balance + amount, to]);
          await tx.execute('INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)', [from, to, amount]);
        },
        { retry: { maxAttempts: 1000, baseDelayMs: 1, maxDelayMs: 20, jitter: 'full' }, beginMode },
      );
      report.committed++;
    }
  } finally {
    await db.close();
  }
  return report;
}

function barrier(): Promise<void> {
  if (process.env.TXKIT_WORKER_BARRIER !== '1') return Promise.resolve();
  process.stdout.write('ready\n');
  return new Promise((resolve) => {
    process.stdin.once('data', () => {
      process.stdin.pause();
      resolve();
    });
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const [file, transfers, seed, mode] = process.argv.slice(2);
if (isMain && file && transfers && seed) {
  barrier()
    .then(() =>
      runTransfers(file, Number(transfers), Number(seed), (mode as BeginMode | undefined) ?? 'immediate'),
    )
    .then(
      (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      (err) => {
        process.stderr.write(`${err?.stack ?? err}\n`);
        process.exit(1);
      },
    );
}
