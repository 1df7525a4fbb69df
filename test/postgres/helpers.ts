/**
 * Test helpers for the PostgreSQL suites: one fresh database per test file, clients with
 * bounded timeouts so a bug never hangs the run, and an explicit barrier for concurrency.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.TXKIT_PG_URL;

/** A database private to one test file, dropped at the end. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  if (!PG_URL) throw new Error('TXKIT_PG_URL is not set');
  const name = `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(PG_URL, name);
  return {
    url,
    name,
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        // Prepared transactions left behind by a failed test would block DROP DATABASE.
        const { rows } = await c.query<{ gid: string }>(
          'SELECT gid FROM pg_prepared_xacts WHERE database = $1',
          [name],
        );
        for (const { gid } of rows) {
          const d = new pg.Client({ connectionString: url });
          await d.connect();
          await d.query(`ROLLBACK PREPARED '${gid.replaceAll("'", "''")}'`).catch(() => {});
          await d.end();
        }
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A plain `pg.Client` with statement and lock timeouts, so a test bug fails instead of hanging. */
export async function connect(url: string, timeoutMs = 10_000): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString: url,
    statement_timeout: timeoutMs,
    lock_timeout: timeoutMs,
  } as pg.ClientConfig);
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** Catches a promise's rejection as a value. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** Resolves once `pid` is waiting on a lock (polled on the server; event-driven enough for a lock wait). */
export async function waitUntilBlocked(observer: pg.Client, pid: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await observer.query<{ n: number }>(
      'SELECT cardinality(pg_blocking_pids($1))::int AS n',
      [pid],
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    if (Date.now() > until) throw new Error(`backend ${pid} never blocked`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Statements sent by txkit's pooled connections, and a switch to drop the socket around COMMIT. */
export interface Instrumented {
  pool: pg.Pool;
  log: string[];
  /** Next COMMIT: drop the socket just after sending it (`after`) or instead of sending it (`before`). */
  dropOnCommit: 'after' | 'before' | undefined;
}

export function instrumentedPool(url: string, max = 5): Instrumented {
  const pool = new pg.Pool({ connectionString: url, max, statement_timeout: 15_000 } as pg.PoolConfig);
  const state: Instrumented = { pool, log: [], dropOnCommit: undefined };
  pool.on('connect', (client) => {
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const first = args[0];
      const text = typeof first === 'string' ? first : (first as { text?: string } | undefined)?.text;
      if (text !== undefined) state.log.push(text);
      if (text === 'COMMIT' && state.dropOnCommit) {
        const when = state.dropOnCommit;
        state.dropOnCommit = undefined;
        const stream = (client as unknown as { connection: { stream: { destroy(): void } } }).connection
          .stream;
        if (when === 'before') stream.destroy();
        const result = original(...args);
        if (when === 'after') stream.destroy();
        return result;
      }
      return original(...args);
    };
  });
  return state;
}

/** Backends of `database` other than the caller that are not idle (inside a transaction, or running). */
export async function busyBackends(
  observer: pg.Client,
  database: string,
): Promise<{ pid: number; state: string }[]> {
  const { rows } = await observer.query<{ pid: number; state: string }>(
    `SELECT pid, state FROM pg_stat_activity
      WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'`,
    [database],
  );
  return rows;
}
