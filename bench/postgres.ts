/**
 * TPC-B-like benchmark (pgbench's five statements per transaction) through txkit, through
 * raw `pg`, and through pgbench itself, at the same scale, with 1 and 16 clients.
 *
 *   npm run build && npx tsx bench/postgres.ts [--url postgres://…] [--seconds 5] [--rounds 3] [--scale 16] [--clients 1,16] [--prepared]
 *
 * The default scale is 16, as pgbench's documentation advises (scale at least the number of
 * clients): at scale 1 every transaction updates the one branch row, so 16 clients queue on
 * that row lock and the figure measures how long the client holds it (the event loop's
 * latency), not throughput. `--scale 1` shows that case.
 *
 * Without --url it starts a private throwaway cluster (needs the PostgreSQL server
 * binaries; fsync is off there, which makes commits cheap and client overhead visible).
 * pgbench runs with `-M extended` (bound parameters), as node-postgres does. With
 * `--prepared` all three prepare their statements once per connection: pgbench
 * `-M prepared`, raw pg with named statements, txkit with `prepareStatements: true`.
 */
import { createHook } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { postgres } from '../dist/sql/postgres/index.js';
import { findPgBinDir, startPrivateCluster } from '../test/support/postgres-server.js';

const run = promisify(execFile);

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const SECONDS = Number(arg('seconds', '5'));
/** Raw and txkit runs alternate this many times (each SECONDS long); the median counts. */
const ROUNDS = Number(arg('rounds', '3'));
const SCALE = Number(arg('scale', '16'));
const CLIENTS = arg('clients', '1,16').split(',').map(Number);
const WARMUP_MS = 1000;
const PREPARED = process.argv.includes('--prepared');

const SQL = {
  updAccount: 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2',
  selAccount: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
  updTeller: 'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2',
  updBranch: 'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2',
  insHistory:
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)',
};

const rnd = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
function params() {
  return {
    aid: rnd(1, 100_000 * SCALE),
    bid: rnd(1, SCALE),
    tid: rnd(1, 10 * SCALE),
    delta: rnd(-5000, 5000),
  };
}

type Runner = () => Promise<void>;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Measured {
  tps: number;
  /** Client CPU (user + system) per transaction, µs: robust to other load on the machine. */
  cpuUs: number;
}

/** Runs `clients` loops for WARMUP + SECONDS; returns committed transactions per second after warmup. */
async function measure(clients: number, one: Runner): Promise<Measured> {
  let counting = false;
  let count = 0;
  let stop = false;
  const loops = Array.from({ length: clients }, async () => {
    while (!stop) {
      await one();
      if (counting) count++;
    }
  });
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  counting = true;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  counting = false;
  const cpu = process.cpuUsage(cpu0);
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(loops);
  return { tps: count / elapsed, cpuUs: (cpu.user + cpu.system) / Math.max(1, count) };
}

/**
 * Promises created per transaction, one client at a time. On Node 20 each costs an async
 * hook once AsyncLocalStorage is in use, so this is a load-independent measure of overhead.
 */
async function promisesPerTx(one: Runner, n = 500): Promise<number> {
  for (let i = 0; i < 50; i++) await one();
  let count = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') count++;
    },
  }).enable();
  for (let i = 0; i < n; i++) await one();
  hook.disable();
  return count / n;
}

async function pgbench(binDir: string, url: string, clients: number): Promise<number> {
  const u = new URL(url);
  const args = [
    '-h',
    u.hostname,
    '-p',
    u.port || '5432',
    '-U',
    decodeURIComponent(u.username || 'postgres'),
    '-M',
    PREPARED ? 'prepared' : 'extended',
    '-c',
    String(clients),
    '-j',
    String(Math.min(clients, 2)),
    '-T',
    String(SECONDS),
    '-n',
    u.pathname.slice(1),
  ];
  const env = { ...process.env, ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}) };
  const { stdout } = await run(path.join(binDir, 'pgbench'), args, { env });
  const m =
    /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`could not read pgbench output:\n${stdout}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const binDir = findPgBinDir();
  let url = arg('url', process.env.TXKIT_PG_URL ?? '');
  let stopServer: (() => Promise<void>) | undefined;
  if (!url) {
    const server = await startPrivateCluster();
    if (!server) throw new Error('no --url and no PostgreSQL server binaries to start a private cluster');
    url = server.env.TXKIT_PG_URL!;
    stopServer = () => server.stop();
  }
  try {
    if (!binDir) throw new Error('pgbench not found (PostgreSQL server binaries)');
    const u = new URL(url);
    await run(
      path.join(binDir, 'pgbench'),
      [
        '-i',
        '-q',
        '-s',
        String(SCALE),
        '-h',
        u.hostname,
        '-p',
        u.port || '5432',
        '-U',
        u.username || 'postgres',
        u.pathname.slice(1),
      ],
      { env: { ...process.env, ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}) } },
    );
    console.log(
      `TPC-B-like${PREPARED ? ', prepared statements' : ''}, scale ${SCALE}, median of ${ROUNDS} alternating ${SECONDS} s runs (+${WARMUP_MS} ms warmup each), node ${process.version}`,
    );
    console.log(
      'clients   pgbench tps   raw pg tps   txkit tps   txkit/raw   txkit/pgbench   cpu µs/tx raw   cpu µs/tx txkit',
    );
    const spread: string[] = [];
    let promiseLine = '';
    for (const clients of CLIENTS) {
      const pool = new pg.Pool({ connectionString: url, max: clients });
      const q = (c: pg.PoolClient, key: keyof typeof SQL, values: unknown[]) =>
        PREPARED ? c.query({ name: key, text: SQL[key], values }) : c.query(SQL[key], values);
      const raw: Runner = async () => {
        const p = params();
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          await q(c, 'updAccount', [p.delta, p.aid]);
          await q(c, 'selAccount', [p.aid]);
          await q(c, 'updTeller', [p.delta, p.tid]);
          await q(c, 'updBranch', [p.delta, p.bid]);
          await q(c, 'insHistory', [p.tid, p.bid, p.aid, p.delta]);
          await c.query('COMMIT');
          c.release();
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          c.release();
          throw err;
        }
      };
      const db = postgres({ connectionString: url, max: clients, prepareStatements: PREPARED });
      const viaTxkit: Runner = () =>
        db.transaction(async (tx) => {
          const p = params();
          await tx.execute(SQL.updAccount, [p.delta, p.aid]);
          await tx.query(SQL.selAccount, [p.aid]);
          await tx.execute(SQL.updTeller, [p.delta, p.tid]);
          await tx.execute(SQL.updBranch, [p.delta, p.bid]);
          await tx.execute(SQL.insHistory, [p.tid, p.bid, p.aid, p.delta]);
        });
      if (clients === CLIENTS[0]) {
        const rawPromises = await promisesPerTx(raw);
        const txkitPromises = await promisesPerTx(viaTxkit);
        promiseLine = `promises per transaction: raw pg ${rawPromises.toFixed(1)}, txkit ${txkitPromises.toFixed(1)}`;
      }
      // Alternate the two so that drift (table growth, autovacuum, JIT) hits both alike.
      const rawRuns: Measured[] = [];
      const txkitRuns: Measured[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        rawRuns.push(await measure(clients, raw));
        txkitRuns.push(await measure(clients, viaTxkit));
      }
      const rawTps = median(rawRuns.map((m) => m.tps));
      const txkitTps = median(txkitRuns.map((m) => m.tps));
      const rawCpu = median(rawRuns.map((m) => m.cpuUs));
      const txkitCpu = median(txkitRuns.map((m) => m.cpuUs));
      await pool.end();
      await db.close();

      const benchTps = await pgbench(binDir, url, clients);
      const runs = (ms: Measured[]) => ms.map((m) => m.tps.toFixed(0)).join('/');
      spread.push(`${clients} client(s): raw ${runs(rawRuns)}, txkit ${runs(txkitRuns)} tps`);
      console.log(
        `${String(clients).padStart(7)}   ${benchTps.toFixed(0).padStart(11)}   ${rawTps.toFixed(0).padStart(10)}   ` +
          `${txkitTps.toFixed(0).padStart(9)}   ${(txkitTps / rawTps).toFixed(3).padStart(9)}   ` +
          `${(txkitTps / benchTps).toFixed(3).padStart(13)}   ${rawCpu.toFixed(0).padStart(13)}   ${txkitCpu.toFixed(0).padStart(15)}`,
      );
    }
    console.log(`individual runs (the spread shows how loaded the machine was): ${spread.join('; ')}`);
    console.log(promiseLine);
  } finally {
    await stopServer?.();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
