/**
 * The same small transaction (START TRANSACTION; UPDATE one row; COMMIT) through txkit and
 * through hand-written mysql2 on the same pool size, with 1 and 16 concurrent clients.
 * Each client updates its own rows, so the numbers measure overhead, not lock waits.
 * Rounds alternate; medians are reported. Raw mysql2 runs twice: with its defaults, and
 * with `trace: false` — the setting txkit's own pool uses (mysql2's per-query stack capture
 * costs tens of µs per transaction; txkit wraps errors with its own stack), so the second
 * ratio is txkit's own overhead on equal driver settings. "adapter alone" drives the MySQL
 * resource through the SPI without the engine, to show where the overhead lies.
 *
 *   npm run build && npx tsx bench/mysql.ts     (uses TXKIT_MYSQL_URL, or starts a private MariaDB)
 *   TXKIT_BENCH_TX=4000 TXKIT_BENCH_ROUNDS=7 npx tsx bench/mysql.ts
 */
import { createHook } from 'node:async_hooks';
import mysql2 from 'mysql2/promise';
import { mysql } from '../dist/sql/mysql/index.js';
import {
  canStartPrivateInstance,
  type PrivateInstance,
  startPrivateInstance,
} from '../test/support/mysql-server.js';

const TX = Number(process.env.TXKIT_BENCH_TX ?? 2000);
const ROUNDS = Number(process.env.TXKIT_BENCH_ROUNDS ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Runs `tx` TX times spread over `clients` concurrent loops; returns elapsed ms and client CPU µs. */
async function drive(
  clients: number,
  tx: (client: number, i: number) => Promise<void>,
): Promise<{ ms: number; cpuUs: number }> {
  const per = Math.ceil(TX / clients);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < per; i++) await tx(c, i);
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { ms: performance.now() - t0, cpuUs: cpu.user + cpu.system };
}

/**
 * Promises created per transaction (one client, sequential), counted with an async hook.
 * On Node 20 each promise also runs AsyncLocalStorage's promise hook, so this count is the
 * load-independent measure of per-transaction overhead.
 */
async function promisesPerTx(tx: (client: number, i: number) => Promise<void>): Promise<number> {
  const n = 200;
  let count = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') count++;
    },
  });
  for (let i = 0; i < 20; i++) await tx(0, i); // warm-up
  hook.enable();
  for (let i = 0; i < n; i++) await tx(0, i);
  hook.disable();
  return count / n;
}

async function main(): Promise<void> {
  let server: PrivateInstance | undefined;
  let url = process.env.TXKIT_MYSQL_URL;
  if (!url) {
    if (!canStartPrivateInstance()) throw new Error('set TXKIT_MYSQL_URL or install mariadb-server');
    server = await startPrivateInstance();
    url = server.env.TXKIT_MYSQL_URL as string;
  }
  try {
    const setup = await mysql2.createConnection(url);
    await setup.query('DROP TABLE IF EXISTS bench_counters');
    await setup.query('CREATE TABLE bench_counters (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB');
    await setup.query('INSERT INTO bench_counters (id, n) VALUES ?', [
      Array.from({ length: 1600 }, (_, i) => [i, 0]),
    ]);
    await setup.end();
    const rowOf = (client: number, i: number) => client * 100 + (i % 100);

    console.log(`txkit vs raw mysql2: ${TX} transactions per round, ${ROUNDS} rounds, median`);
    for (const clients of [1, 16]) {
      const pool = mysql2.createPool({ uri: url, connectionLimit: clients });
      const poolNoTrace = mysql2.createPool({ uri: url, connectionLimit: clients, trace: false });
      const db = mysql({ uri: url, connectionLimit: clients });
      // The hand-written equivalent of one txkit transaction.
      const rawOn = (pool: mysql2.Pool) => async (client: number, i: number) => {
        const conn = await pool.getConnection();
        try {
          await conn.query('START TRANSACTION');
          await conn.query('UPDATE bench_counters SET n = n + 1 WHERE id = ?', [rowOf(client, i)]);
          await conn.query('COMMIT');
          conn.release();
        } catch (err) {
          await conn.query('ROLLBACK').catch(() => {});
          conn.destroy();
          throw err;
        }
      };
      const raw = rawOn(pool);
      const rawNoTrace = rawOn(poolNoTrace);
      const viaTxkit = (client: number, i: number) =>
        db.transaction(async (tx) => {
          await tx.execute('UPDATE bench_counters SET n = n + 1 WHERE id = ?', [rowOf(client, i)]);
        });
      // The adapter alone, driven through the resource SPI without the engine: shows how the
      // overhead splits between the MySQL adapter and the engine (no retry, context, hooks).
      let txNo = 0;
      const adapterOnly = async (client: number, i: number) => {
        const tx = await db.resource.begin({
          txId: `bench-${++txNo}`,
          readOnly: false,
          deferrable: false,
          suspended: [],
          extra: {},
        });
        try {
          await tx.execute('UPDATE bench_counters SET n = n + 1 WHERE id = ?', [rowOf(client, i)]);
        } catch (err) {
          await tx.rollback();
          throw err;
        }
        await tx.commit();
      };
      const runners = { raw, rawNoTrace, adapter: adapterOnly, txkit: viaTxkit };
      const ms: Record<keyof typeof runners, number[]> = { raw: [], rawNoTrace: [], adapter: [], txkit: [] };
      const cpu: Record<keyof typeof runners, number[]> = { raw: [], rawNoTrace: [], adapter: [], txkit: [] };
      for (const run of Object.values(runners)) await drive(clients, run); // warm-up
      const order = Object.entries(runners) as [keyof typeof runners, typeof raw][];
      for (let r = 0; r < ROUNDS; r++) {
        // ABBA: every other round runs in reverse, so no side always follows the same neighbour.
        for (const [name, run] of r % 2 === 0 ? order : [...order].reverse()) {
          const m = await drive(clients, run);
          ms[name].push(m.ms);
          cpu[name].push(m.cpuUs);
        }
      }
      // Per-round ratios pair runs made seconds apart, under the same load from the rest of
      // the machine; their spread shows how far a single ratio can be trusted.
      const perRound = ms.raw.map((rawMs, r) => rawMs / (ms.txkit[r] as number));
      const spread = `per-round txkit/raw ${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}, median ${median(perRound).toFixed(3)}x`;
      const tps = (name: keyof typeof runners) => (TX / median(ms[name])) * 1000;
      // Client CPU per transaction: the library's own cost, less sensitive to a busy machine.
      const cpuTx = (name: keyof typeof runners) => (median(cpu[name]) / TX).toFixed(0);
      console.log(
        `clients=${String(clients).padStart(2)}  raw mysql2 ${tps('raw').toFixed(0).padStart(6)} tx/s ` +
          `(trace:false ${tps('rawNoTrace').toFixed(0).padStart(6)})   txkit ${tps('txkit').toFixed(0).padStart(6)} tx/s   ` +
          `ratio ${(tps('txkit') / tps('raw')).toFixed(3)}x (vs trace:false ${(tps('txkit') / tps('rawNoTrace')).toFixed(3)}x)   ` +
          `client CPU µs/tx raw ${cpuTx('raw')}, trace:false ${cpuTx('rawNoTrace')}, txkit ${cpuTx('txkit')} ` +
          `(adapter alone ${cpuTx('adapter')} µs, ${tps('adapter').toFixed(0)} tx/s)`,
      );
      console.log(`           ${spread}`);
      if (clients === 1) {
        const p = {
          raw: await promisesPerTx(raw),
          rawNoTrace: await promisesPerTx(rawNoTrace),
          adapter: await promisesPerTx(adapterOnly),
          txkit: await promisesPerTx(viaTxkit),
        };
        console.log(
          `           promises/tx  raw mysql2 ${p.raw.toFixed(1)}, trace:false ${p.rawNoTrace.toFixed(1)}, ` +
            `txkit ${p.txkit.toFixed(1)} (adapter alone ${p.adapter.toFixed(1)})`,
        );
      }
      await pool.end();
      await poolNoTrace.end();
      await db.close();
    }
  } finally {
    await server?.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
