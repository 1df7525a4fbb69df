/**
 * Monitoring helpers over PostgreSQL's own views: open transactions (`pg_stat_activity`),
 * locks (`pg_locks`), who blocks whom (`pg_blocking_pids()` — there is no
 * `pg_blocking_processes` view), prepared transactions and the NOTIFY queue.
 * Query texts are truncated and their string literals redacted by default.
 *
 * @example
 * ```ts
 * const m = new PgMonitor(db.pool);
 * for (const c of await m.blockingChains()) console.log(c.chain.join(' → '));
 * ```
 */
import type { PreparedInfo } from '../../core/resource.js';
import { listPrepared, type Queryable } from './prepared.js';

export interface ActivityRow {
  pid: number;
  user: string | null;
  database: string | null;
  application: string | null;
  /** `active`, `idle in transaction`, `idle in transaction (aborted)`, … */
  state: string | null;
  xactStart: Date | null;
  /** Age of the open transaction in ms (null outside a transaction). */
  xactAgeMs: number | null;
  waitEventType: string | null;
  waitEvent: string | null;
  query: string;
}

export interface LockRow {
  pid: number;
  locktype: string;
  mode: string;
  granted: boolean;
  /** The locked relation, when the lock is on one. */
  relation: string | null;
  transactionId: string | null;
  /** How long the lock has been waited for (PostgreSQL ≥ 14; null when granted). */
  waitingMs: number | null;
  query: string;
}

export interface BlockedRow {
  pid: number;
  blockedBy: number[];
  /** How long the session has waited (since its lock wait began, or its query start). */
  waitingMs: number;
  query: string;
}

export interface BlockingChain {
  /** The blocked session at the end of the chain. */
  pid: number;
  /** From that session to the root blocker: `[waiter, its blocker, …, root]`. */
  chain: number[];
  /** The root blocker (the session nobody blocks). A cycle ends at the first repeated pid. */
  root: number;
  cycle: boolean;
  waitingMs: number;
}

export interface MonitorOptions {
  /** Longest query text returned; default 200 characters. */
  maxQueryLength?: number;
  /** Replace string literals in query texts with `'?'`. Default true (they may hold personal data). */
  redact?: boolean;
  /** Look at every database, not only the current one. Default false. */
  allDatabases?: boolean;
}

export class PgMonitor {
  readonly #max: number;
  readonly #redact: boolean;
  readonly #all: boolean;

  constructor(
    private readonly q: Queryable,
    options: MonitorOptions = {},
  ) {
    this.#max = options.maxQueryLength ?? 200;
    this.#redact = options.redact ?? true;
    this.#all = options.allDatabases ?? false;
  }

  #text(query: unknown): string {
    let s = typeof query === 'string' ? query : '';
    if (this.#redact) s = s.replace(/'(?:[^']|'')*'/g, "'?'");
    s = s.replace(/\s+/g, ' ').trim();
    return s.length > this.#max ? `${s.slice(0, this.#max)}…` : s;
  }

  /** Client sessions, optionally only those in a transaction at least `minXactAgeMs` old or in given states. */
  async activity(options: { minXactAgeMs?: number; states?: string[] } = {}): Promise<ActivityRow[]> {
    const { rows } = await this.q.query(
      `SELECT pid, usename, datname, application_name, state, xact_start,
              (extract(epoch FROM clock_timestamp() - xact_start) * 1000)::float8 AS xact_age_ms,
              wait_event_type, wait_event, query
         FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
          AND ($1 OR datname = current_database())
          AND ($2::float8 IS NULL OR (xact_start IS NOT NULL AND clock_timestamp() - xact_start >= $2::float8 * interval '1 millisecond'))
          AND ($3::text[] IS NULL OR state = ANY($3::text[]))
        ORDER BY xact_start NULLS LAST, pid`,
      [this.#all, options.minXactAgeMs ?? null, options.states ?? null],
    );
    return rows.map((r) => ({
      pid: r.pid,
      user: r.usename,
      database: r.datname,
      application: r.application_name,
      state: r.state,
      xactStart: r.xact_start,
      xactAgeMs: r.xact_age_ms === null ? null : Math.round(r.xact_age_ms),
      waitEventType: r.wait_event_type,
      waitEvent: r.wait_event,
      query: this.#text(r.query),
    }));
  }

  /** Locks held or awaited by client sessions; `waitingOnly` keeps the ungranted ones. */
  async locks(options: { waitingOnly?: boolean } = {}): Promise<LockRow[]> {
    const { rows } = await this.q.query(
      `SELECT l.pid, l.locktype, l.mode, l.granted, l.relation::regclass::text AS relation,
              l.transactionid::text AS transactionid,
              (extract(epoch FROM clock_timestamp() - l.waitstart) * 1000)::float8 AS waiting_ms,
              a.query
         FROM pg_locks l
         JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
          AND ($1 OR a.datname = current_database())
          AND (NOT $2 OR NOT l.granted)
        ORDER BY l.granted, l.pid`,
      [this.#all, options.waitingOnly === true],
    );
    return rows.map((r) => ({
      pid: r.pid,
      locktype: r.locktype,
      mode: r.mode,
      granted: r.granted,
      relation: r.relation,
      transactionId: r.transactionid,
      waitingMs: r.waiting_ms === null ? null : Math.round(r.waiting_ms),
      query: this.#text(r.query),
    }));
  }

  /** Sessions waiting on another session's lock, with the pids that block them. */
  async blocked(options: { minWaitMs?: number } = {}): Promise<BlockedRow[]> {
    const { rows } = await this.q.query(
      `SELECT a.pid, pg_blocking_pids(a.pid) AS blocked_by,
              (extract(epoch FROM clock_timestamp() - coalesce(
                 (SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted),
                 a.query_start)) * 1000)::float8 AS waiting_ms,
              a.query
         FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid() AND cardinality(pg_blocking_pids(a.pid)) > 0
          AND ($1 OR a.datname = current_database())
        ORDER BY waiting_ms DESC`,
      [this.#all],
    );
    return rows
      .map((r) => ({
        pid: r.pid as number,
        blockedBy: (r.blocked_by as number[]).map(Number),
        waitingMs: Math.max(0, Math.round(r.waiting_ms ?? 0)),
        query: this.#text(r.query),
      }))
      .filter((r) => r.waitingMs >= (options.minWaitMs ?? 0));
  }

  /** For each blocked session, the chain of blockers up to the root (following the first blocker). */
  async blockingChains(options: { minWaitMs?: number } = {}): Promise<BlockingChain[]> {
    const blocked = await this.blocked(options);
    return chainsOf(blocked);
  }

  /** The oldest prepared transaction of this database, or null. */
  async oldestPrepared(): Promise<PreparedInfo | null> {
    const all = await listPrepared(this.q, { allDatabases: this.#all });
    return all[0] ?? null;
  }

  /** Fraction (0–1) of the server-wide NOTIFY queue in use; near 1, NOTIFY fails at COMMIT. */
  async notificationQueueUsage(): Promise<number> {
    const { rows } = await this.q.query('SELECT pg_notification_queue_usage()::float8 AS usage');
    return Number(rows[0]?.usage ?? 0);
  }
}

/** Builds blocker chains from `blocked` rows (pure; exported for tests and the CLI). */
export function chainsOf(blocked: readonly BlockedRow[]): BlockingChain[] {
  const by = new Map(blocked.map((b) => [b.pid, b]));
  return blocked.map((b) => {
    const chain = [b.pid];
    const seen = new Set(chain);
    let cycle = false;
    let cur = b;
    for (;;) {
      const next = cur.blockedBy[0];
      if (next === undefined) break;
      if (seen.has(next)) {
        cycle = true;
        chain.push(next);
        break;
      }
      chain.push(next);
      seen.add(next);
      const row = by.get(next);
      if (!row) break;
      cur = row;
    }
    return { pid: b.pid, chain, root: chain[chain.length - 1]!, cycle, waitingMs: b.waitingMs };
  });
}
