import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runWorkers } from '../../src/cli/spawn-workers.js';
import { prng } from '../../src/cli/transfer-worker.js';
import { sqlite } from '../../src/sql/sqlite/index.js';
import { deferred, openDb, tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '../..');

function runChild(args: string[], onLine?: (line: string) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line) onLine?.(line);
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`)),
    );
  });
}

describe('one handle, many async flows', () => {
  it('serializes transactions FIFO: bodies that await never interleave', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE log (seq INTEGER PRIMARY KEY, who TEXT)');
    const order: string[] = [];
    db.on('begin', (e) => order.push(`begin:${e.name}`));
    db.on('commit', (e) => order.push(`commit:${e.name}`));
    const body = (who: string) => async () => {
      await db.execute('INSERT INTO log (who) VALUES (?)', [who]);
      await new Promise((r) => setTimeout(r, 20));
      await db.execute('INSERT INTO log (who) VALUES (?)', [who]);
    };
    await Promise.all(['A', 'B', 'C'].map((who) => db.transaction(body(who), { name: who })));
    expect(order).toEqual(['begin:A', 'commit:A', 'begin:B', 'commit:B', 'begin:C', 'commit:C']);
    const rows = await db.query<{ who: string }>('SELECT who FROM log ORDER BY seq');
    expect(rows.map((r) => r.who).join('')).toBe('AABBCC');
  });

  it('never lets other async code join an open transaction: its write waits and survives the rollback', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE marks (m TEXT PRIMARY KEY)');
    const inside = deferred();
    const proceed = deferred();
    let otherDone = false;
    const tx = db
      .transaction(async () => {
        await db.execute("INSERT INTO marks VALUES ('in-tx')");
        inside.resolve();
        await proceed.promise;
        throw new Error('roll back');
      })
      .catch(() => 'rolled back');
    await inside.promise;
    // Another async context, while the transaction is suspended at an await:
    const other = db.execute("INSERT INTO marks VALUES ('other')").then(() => {
      otherDone = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(otherDone).toBe(false); // queued behind the transaction, not inside it
    proceed.resolve();
    expect(await tx).toBe('rolled back');
    await other;
    expect(await db.query('SELECT m FROM marks')).toEqual([{ m: 'other' }]);
  });

  it('a forgotten manual transaction makes other callers fail with a diagnostic, not hang', async () => {
    const db = openDb({ lockWaitTimeoutMs: 100 });
    const manual = await db.begin({ name: 'forgotten' });
    const err = await db.query('SELECT 1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_POOL_TIMEOUT' });
    expect((err as Error).message).toMatch(/forgotten/);
    await manual.rollback();
    expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});

describe('several processes on one file', () => {
  it('retries SQLITE_BUSY_SNAPSHOT: a deferred read-then-write after another commit re-runs and succeeds', async () => {
    const dir = tempDir();
    const a = openDb({}, dir);
    const b = sqlite({ filename: join(dir, 'test.db') });
    try {
      await a.execute('CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
      await a.execute('INSERT INTO counter VALUES (1, 0)');
      const retried: string[] = [];
      a.on('retry', (e) => retried.push((e.error as { driverCode?: string }).driverCode ?? '?'));
      let attempts = 0;
      await a.transaction(
        async (tx) => {
          attempts++;
          const [row] = await tx.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
          if (attempts === 1) await b.execute('UPDATE counter SET n = n + 10 WHERE id = 1'); // commits meanwhile
          await tx.execute('UPDATE counter SET n = ? WHERE id = 1', [row!.n + 1]);
        },
        { beginMode: 'deferred', retry: { baseDelayMs: 1 } },
      );
      expect(attempts).toBe(2);
      expect(retried).toEqual(['SQLITE_BUSY_SNAPSHOT']);
      expect(await a.query('SELECT n FROM counter')).toEqual([{ n: 11 }]); // no lost update
    } finally {
      await b.close();
    }
  });

  it('keeps the total balance with concurrent workers doing read-modify-write transfers with retry', async () => {
    const dir = tempDir();
    const file = join(dir, 'bank.db');
    const setup = sqlite({ filename: file });
    await setup.execute(
      'CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))',
    );
    await setup.execute(
      'CREATE TABLE transfers (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER)',
    );
    await setup.batch(
      Array.from({ length: 10 }, (_, i) => [i + 1, 1000]),
      { statement: 'INSERT INTO accounts VALUES (?, ?)' },
    );
    await setup.close();
    const perWorker = 150;
    // DEFERRED read-then-write transactions, released together: they conflict
    // (SQLITE_BUSY on the upgrade, SQLITE_BUSY_SNAPSHOT after another commit) and are retried.
    const reports = await runWorkers(file, 3, perWorker, 'deferred');
    const check = sqlite({ filename: file });
    const [{ total, n }] = (await check.query<{ total: number; n: number }>(
      'SELECT sum(balance) AS total, count(*) AS n FROM accounts',
    )) as [{ total: number; n: number }];
    const moved = await check.query<{ id: number; net: number }>(
      `SELECT a.id, a.balance - 1000 AS net FROM accounts a ORDER BY a.id`,
    );
    const ledger = await check.query<{ id: number; net: number }>(
      `SELECT id, coalesce((SELECT sum(amount) FROM transfers WHERE dst = a.id), 0)
                - coalesce((SELECT sum(amount) FROM transfers WHERE src = a.id), 0) AS net
         FROM accounts a ORDER BY id`,
    );
    await check.close();
    expect(n).toBe(10);
    expect(total).toBe(10_000);
    expect(moved).toEqual(ledger); // every committed transfer is reflected exactly once: no lost update
    expect(reports.reduce((s, r) => s + r.committed, 0)).toBe(3 * perWorker);
    expect(reports.reduce((s, r) => s + r.retries, 0)).toBeGreaterThan(0);
  }, 60_000);

  it('waits for another process holding the write lock without blocking the event loop', async () => {
    const dir = tempDir();
    const db = openDb({}, dir);
    await db.execute('CREATE TABLE marks (m TEXT PRIMARY KEY)');
    const locked = deferred();
    const child = runChild(
      [join('test/sqlite/fixtures/hold-lock.ts'), join(dir, 'test.db'), '800'],
      (line) => {
        if (line === 'locked') locked.resolve();
      },
    );
    await locked.promise;
    let maxLag = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 5);
      last = now;
    }, 5);
    const started = performance.now();
    await db.transaction((tx) => tx.execute("INSERT INTO marks VALUES ('from-parent')"));
    const waited = performance.now() - started;
    clearInterval(timer);
    await child;
    expect(waited).toBeGreaterThan(500); // it really waited for the other process
    expect(maxLag).toBeLessThan(300); // while timers kept firing (a blocking wait would stall them ~800 ms)
    expect(await db.query('SELECT m FROM marks ORDER BY m')).toEqual([
      { m: 'from-child' },
      { m: 'from-parent' },
    ]);
  });

  it('gives up with a BusyError of kind timeout when the busy budget is spent', async () => {
    const dir = tempDir();
    const db = openDb({ busyTimeoutMs: 100 }, dir);
    await db.execute('CREATE TABLE marks (m TEXT PRIMARY KEY)');
    const locked = deferred();
    const child = runChild(
      [join('test/sqlite/fixtures/hold-lock.ts'), join(dir, 'test.db'), '600'],
      (line) => {
        if (line === 'locked') locked.resolve();
      },
    );
    await locked.promise;
    const err = await db.transaction(async () => {}).catch((e: unknown) => e);
    await child;
    expect(err).toMatchObject({ code: 'E_BUSY', kind: 'timeout', retryable: true });
  });
});

describe('prng', () => {
  it('is deterministic per seed', () => {
    const a = prng(7);
    const b = prng(7);
    expect([a(), a(), a()]).toEqual([b(), b(), b()]);
  });
});
