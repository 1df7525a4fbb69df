/**
 * The PostgreSQL demo behind `txkit demo --pg <url>`: a few scenarios that show what txkit
 * guarantees on a real server, each reported as one line. It works in its own tables
 * (random suffix) and drops them at the end.
 */
import { randomBytes } from 'node:crypto';
import { DeadlockError, TransactionRolledBackError } from '../../core/errors.js';
import { postgres } from './index.js';

function gate(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Runs the scenarios against `url` and returns the report lines. */
export async function runPgDemo(url: string): Promise<string[]> {
  const lines: string[] = [];
  const ok = (cond: boolean, text: string) => lines.push(`${cond ? '✔' : '✘'} ${text}`);
  const suffix = randomBytes(4).toString('hex');
  const accounts = `txkit_demo_accounts_${suffix}`;
  const db = postgres({ connectionString: url, max: 8, acquireTimeoutMs: 10_000 });
  const balances = async () =>
    (await db.query<{ balance: number }>(`SELECT balance FROM ${accounts} ORDER BY id`)).map(
      (r) => r.balance,
    );
  try {
    await db.execute(
      `CREATE TABLE ${accounts} (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))`,
    );
    await db.execute(`INSERT INTO ${accounts} VALUES (1, 1000), (2, 500), (3, 0)`);

    // 1. atomicity
    await db
      .transaction(async (tx) => {
        await tx.execute(`UPDATE ${accounts} SET balance = balance - 100 WHERE id = 1`);
        throw new Error('crash between debit and credit');
      })
      .catch(() => {});
    ok(
      (await balances()).join() === '1000,500,0',
      'a transfer that throws half-way leaves both balances as they were',
    );

    // 2. a caught statement error cannot be committed
    const swallowed = await db
      .transaction(async (tx) => {
        await tx.execute(`UPDATE ${accounts} SET balance = balance - 100 WHERE id = 1`);
        await tx.execute(`UPDATE ${accounts} SET balance = -1 WHERE id = 2`).catch(() => {});
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    ok(
      swallowed instanceof TransactionRolledBackError && (await balances())[0] === 1000,
      'a statement error caught inside the transaction aborts it: txkit reports a rollback, never a silent COMMIT',
    );

    // 3. isolation reported truthfully
    const level = await db.transaction(async (tx) => tx.isolation, { isolation: 'read uncommitted' });
    ok(level === 'read committed', `'read uncommitted' is reported as what PostgreSQL runs: '${level}'`);

    // 4. deadlock: one victim, retried
    let deadlocks = 0;
    const off = db.on('retry', (e) => {
      if (e.error instanceof DeadlockError) deadlocks++;
    });
    const gates = [gate(), gate()];
    const cross = (i: 0 | 1) =>
      db.transaction(
        async (tx) => {
          const [a, b] = i === 0 ? [1, 2] : [2, 1];
          await tx.execute(`UPDATE ${accounts} SET balance = balance - 10 WHERE id = $1`, [a]);
          gates[i]!.resolve();
          await gates[1 - i]!.promise;
          await tx.execute(`UPDATE ${accounts} SET balance = balance + 10 WHERE id = $1`, [b]);
        },
        { retry: true },
      );
    await Promise.all([cross(0), cross(1)]);
    off();
    ok(
      deadlocks === 1 && (await balances()).join() === '1000,500,0',
      `two transfers locking in opposite order: ${deadlocks} deadlock victim, retried, both committed`,
    );

    // 5. 20 concurrent increments, two correct ways
    await Promise.all(
      Array.from({ length: 20 }, () =>
        db.transaction(async (tx) => {
          const [r] = await tx.query<{ balance: number }>(
            `SELECT balance FROM ${accounts} WHERE id = 3 FOR UPDATE`,
          );
          await tx.execute(`UPDATE ${accounts} SET balance = $1 WHERE id = 3`, [r!.balance + 1]);
        }),
      ),
    );
    const retriesBefore = db.metrics().retries;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        db.transaction(
          async (tx) => {
            const [r] = await tx.query<{ balance: number }>(`SELECT balance FROM ${accounts} WHERE id = 3`);
            await tx.execute(`UPDATE ${accounts} SET balance = $1 WHERE id = 3`, [r!.balance + 1]);
          },
          {
            isolation: 'serializable',
            retry: { maxAttempts: 100, baseDelayMs: 2, maxDelayMs: 50, jitter: 'full' },
          },
        ),
      ),
    );
    const counter = (await balances())[2];
    ok(
      counter === 40,
      `20 increments with SELECT … FOR UPDATE + 20 at SERIALIZABLE with retry: ${counter}/40 ` +
        `(${db.metrics().retries - retriesBefore} serialization retries)`,
    );

    // 6. NOTIFY follows the transaction
    const notifier = db.notifier();
    try {
      const it = notifier.iterate('txkit_demo');
      await it.ready;
      await db
        .transaction(async (tx) => {
          await tx.notify('txkit_demo', 'rolled back');
          throw new Error('no');
        })
        .catch(() => {});
      await db.transaction(async (tx) => tx.notify('txkit_demo', 'committed'));
      const first = (await it.next()).value?.payload;
      await it.return?.();
      ok(
        first === 'committed',
        `tx.notify: the rolled-back notification never arrived, the committed one did`,
      );
    } finally {
      await notifier.close();
    }
  } catch (err) {
    lines.push(`✘ demo failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await db.execute(`DROP TABLE IF EXISTS ${accounts}`).catch(() => {});
    await db.close();
  }
  return lines;
}
