/**
 * Read-only lock diagnostics with the right SQL per flavour: MariaDB and MySQL 5.7 read
 * `information_schema.INNODB_LOCK_WAITS` / `INNODB_LOCKS`; MySQL 8 reads
 * `performance_schema.data_lock_waits` / `data_locks`. Lock rows are joined by lock id
 * (never "all locks of the blocker"), wait ages come from `INNODB_TRX.trx_wait_started`
 * (never `processlist.time`), and cycles of any length are found in the wait graph.
 *
 * Everything here needs the PROCESS privilege; without it the methods throw
 * `InsufficientPrivilegeError` naming it, and {@link LockInspector.generateReport}
 * returns what it could read plus an `errors` list.
 */
import { InvalidArgumentError, TxkitError } from '../../core/errors.js';
import {
  type DeadlockReport,
  parseInnodbStatus,
  statusTextFromRow,
  unquoteTable,
} from './deadlock-parser.js';
import { detectServer, type MysqlQueryable, rows, type ServerInfo } from './server-info.js';

const PROCESS = 'PROCESS';

/** A lock as the lock tables show it (a subset of what the deadlock report shows). */
export interface TableLock {
  lockId: string;
  trxId: string;
  /** `RECORD` or `TABLE`. */
  type: string;
  /** `X`, `S`, `X,GAP`, `X,REC_NOT_GAP`, `IX`, ... as the server spells it. */
  mode: string;
  /** `schema.table`, unquoted. */
  table: string;
  index: string | null;
  /** The locked key as text, e.g. `1` or `'A1'`. */
  data: string | null;
  /** MySQL 8 only: `GRANTED` or `WAITING`. */
  status?: string;
}

export interface LockWait {
  waitingTrxId: string;
  waitingThreadId: number;
  waitingQuery: string | null;
  waitStartedAt: Date | null;
  waitAgeSec: number;
  requestedLock: TableLock | null;
  blockingTrxId: string;
  blockingThreadId: number;
  blockingQuery: string | null;
  blockingLock: TableLock | null;
}

export interface TrxInfo {
  trxId: string;
  state: string;
  startedAt: Date | null;
  ageSec: number;
  threadId: number;
  query: string | null;
  rowsLocked: number;
  rowsModified: number;
  weight: number;
  isolationLevel: string;
  waitStartedAt: Date | null;
}

export interface WaitGraph {
  nodes: string[];
  /** waiting trx → blocking trx. */
  edges: Array<{ from: string; to: string }>;
}

export type RiskType = 'circular_wait' | 'long_wait' | 'long_running';

export interface Risk {
  type: RiskType;
  severity: 'high' | 'medium' | 'low';
  trxIds: string[];
  description: string;
}

export interface Recommendation {
  priority: 'high' | 'medium' | 'low';
  category: 'deadlock_prevention' | 'performance' | 'system_health';
  issue: string;
  recommendation: string;
}

export interface LockReport {
  reportTime: string;
  server: ServerInfo | null;
  summary: { totalLockWaits: number; activeTransactions: number; totalLocks: number; deadlockRisks: number };
  currentLocks: LockWait[];
  potentialRisks: {
    longRunningTransactions: TrxInfo[];
    lockChains: string[][];
    deadlockRisks: Risk[];
    analysisTime: string;
  };
  allLocks: TableLock[];
  recommendations: Recommendation[];
  latestDeadlock?: DeadlockReport;
  /** What could not be read (e.g. a missing privilege); the rest of the report is still true. */
  errors: Array<{ section: string; code: string; message: string }>;
}

/** SQL per flavour. MySQL 8 has no INNODB_LOCKS / INNODB_LOCK_WAITS. */
export function lockWaitSql(info: Pick<ServerInfo, 'flavor' | 'major'>): string {
  if (info.flavor === 'mysql' && info.major >= 8) {
    return `SELECT w.requesting_engine_transaction_id AS w_trx, w.blocking_engine_transaction_id AS b_trx,
        rt.trx_mysql_thread_id AS w_thread, rt.trx_query AS w_query, rt.trx_wait_started AS w_started,
        TIMESTAMPDIFF(SECOND, rt.trx_wait_started, NOW()) AS w_age,
        bt.trx_mysql_thread_id AS b_thread, bt.trx_query AS b_query,
        rl.engine_lock_id AS r_id, rl.lock_type AS r_type, rl.lock_mode AS r_mode, rl.object_schema AS r_schema,
        rl.object_name AS r_table, rl.index_name AS r_index, rl.lock_data AS r_data, rl.lock_status AS r_status,
        bl.engine_lock_id AS b_id, bl.lock_type AS b_type, bl.lock_mode AS b_mode, bl.object_schema AS b_schema,
        bl.object_name AS b_table, bl.index_name AS b_index, bl.lock_data AS b_data, bl.lock_status AS b_status
      FROM performance_schema.data_lock_waits w
      JOIN information_schema.INNODB_TRX rt ON rt.trx_id = w.requesting_engine_transaction_id
      JOIN information_schema.INNODB_TRX bt ON bt.trx_id = w.blocking_engine_transaction_id
      LEFT JOIN performance_schema.data_locks rl ON rl.engine_lock_id = w.requesting_engine_lock_id
      LEFT JOIN performance_schema.data_locks bl ON bl.engine_lock_id = w.blocking_engine_lock_id
      ORDER BY rt.trx_wait_started`;
  }
  return `SELECT w.requesting_trx_id AS w_trx, w.blocking_trx_id AS b_trx,
      rt.trx_mysql_thread_id AS w_thread, rt.trx_query AS w_query, rt.trx_wait_started AS w_started,
      TIMESTAMPDIFF(SECOND, rt.trx_wait_started, NOW()) AS w_age,
      bt.trx_mysql_thread_id AS b_thread, bt.trx_query AS b_query,
      rl.lock_id AS r_id, rl.lock_type AS r_type, rl.lock_mode AS r_mode, rl.lock_table AS r_table,
      rl.lock_index AS r_index, rl.lock_data AS r_data,
      bl.lock_id AS b_id, bl.lock_type AS b_type, bl.lock_mode AS b_mode, bl.lock_table AS b_table,
      bl.lock_index AS b_index, bl.lock_data AS b_data
    FROM information_schema.INNODB_LOCK_WAITS w
    JOIN information_schema.INNODB_TRX rt ON rt.trx_id = w.requesting_trx_id
    JOIN information_schema.INNODB_TRX bt ON bt.trx_id = w.blocking_trx_id
    LEFT JOIN information_schema.INNODB_LOCKS rl ON rl.lock_id = w.requested_lock_id
    LEFT JOIN information_schema.INNODB_LOCKS bl ON bl.lock_id = w.blocking_lock_id
    ORDER BY rt.trx_wait_started`;
}

/** All locks the server lists (MariaDB: only those involved in a wait). */
export function allLocksSql(info: Pick<ServerInfo, 'flavor' | 'major'>): string {
  if (info.flavor === 'mysql' && info.major >= 8) {
    return `SELECT engine_lock_id AS id, engine_transaction_id AS trx, lock_type AS type, lock_mode AS mode,
        object_schema AS sch, object_name AS tbl, index_name AS idx, lock_data AS data, lock_status AS status
      FROM performance_schema.data_locks`;
  }
  return `SELECT lock_id AS id, lock_trx_id AS trx, lock_type AS type, lock_mode AS mode, lock_table AS tbl,
      lock_index AS idx, lock_data AS data FROM information_schema.INNODB_LOCKS`;
}

const TRX_COLUMNS = `trx_id, trx_state, trx_started, TIMESTAMPDIFF(SECOND, trx_started, NOW()) AS age,
  trx_mysql_thread_id, trx_query, trx_rows_locked, trx_rows_modified, trx_weight, trx_isolation_level, trx_wait_started`;

function lockFrom(r: Record<string, unknown>, p: 'r' | 'b', trxId: string): TableLock | null {
  if (r[`${p}_id`] === null || r[`${p}_id`] === undefined) return null;
  const schema = r[`${p}_schema`];
  const out: TableLock = {
    lockId: String(r[`${p}_id`]),
    trxId,
    type: String(r[`${p}_type`] ?? ''),
    mode: String(r[`${p}_mode`] ?? ''),
    table:
      schema !== undefined ? `${String(schema)}.${String(r[`${p}_table`])}` : unquoteTable(r[`${p}_table`]),
    index: (r[`${p}_index`] as string | null) ?? null,
    data: (r[`${p}_data`] as string | null) ?? null,
  };
  if (r[`${p}_status`] !== undefined) out.status = String(r[`${p}_status`]);
  return out;
}

function trxFrom(r: Record<string, unknown>): TrxInfo {
  return {
    trxId: String(r.trx_id),
    state: String(r.trx_state),
    startedAt: (r.trx_started as Date | null) ?? null,
    ageSec: Number(r.age ?? 0),
    threadId: Number(r.trx_mysql_thread_id),
    query: (r.trx_query as string | null) ?? null,
    rowsLocked: Number(r.trx_rows_locked ?? 0),
    rowsModified: Number(r.trx_rows_modified ?? 0),
    weight: Number(r.trx_weight ?? 0),
    isolationLevel: String(r.trx_isolation_level ?? ''),
    waitStartedAt: (r.trx_wait_started as Date | null) ?? null,
  };
}

/** Every elementary cycle's node list, each reported once (rotated to start at its smallest id). */
export function findCycles(graph: WaitGraph): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of graph.edges) next.set(from, [...(next.get(from) ?? []), to]);
  const seen = new Set<string>();
  const cycles: string[][] = [];
  const visit = (start: string, node: string, path: string[], onPath: Set<string>) => {
    for (const n of next.get(node) ?? []) {
      if (n === start) {
        const min = [...path].sort()[0] as string;
        const i = path.indexOf(min);
        const rotated = [...path.slice(i), ...path.slice(0, i)];
        const key = rotated.join('>');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push(rotated);
        }
      } else if (!onPath.has(n) && n > start) {
        onPath.add(n);
        visit(start, n, [...path, n], onPath);
        onPath.delete(n);
      }
    }
  };
  for (const node of [...graph.nodes].sort()) visit(node, node, [node], new Set([node]));
  return cycles;
}

/** Wait chains: each path from a waiter that nobody waits for ... down to a blocker that waits for nobody. */
export function lockChains(graph: WaitGraph): string[][] {
  const next = new Map<string, string[]>();
  const waitedOn = new Set<string>();
  for (const { from, to } of graph.edges) {
    next.set(from, [...(next.get(from) ?? []), to]);
    waitedOn.add(to);
  }
  const chains: string[][] = [];
  const walk = (node: string, path: string[]) => {
    const outs = (next.get(node) ?? []).filter((n) => !path.includes(n));
    if (outs.length === 0) {
      if (path.length > 1) chains.push(path);
      return;
    }
    for (const n of outs) walk(n, [...path, n]);
  };
  for (const start of next.keys()) if (!waitedOn.has(start)) walk(start, [start]);
  return chains;
}

/**
 * Lock diagnostics on a mysql2 pool or connection. All methods are read-only.
 *
 * @example
 * const inspector = new LockInspector(pool);
 * for (const w of await inspector.currentLockWaits()) {
 *   console.log(`thread ${w.waitingThreadId} waits ${w.waitAgeSec}s for thread ${w.blockingThreadId}`);
 * }
 */
export class LockInspector {
  #info: ServerInfo | undefined;

  constructor(
    private readonly q: MysqlQueryable,
    info?: ServerInfo,
  ) {
    this.#info = info;
  }

  async serverInfo(): Promise<ServerInfo> {
    this.#info ??= await detectServer(this.q);
    return this.#info;
  }

  async #rows<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    const info = await this.serverInfo();
    return rows<T>(this.q, sql, params, info.flavor, PROCESS);
  }

  /** Who waits for whom right now, with the exact requested and blocking locks. */
  async currentLockWaits(): Promise<LockWait[]> {
    const info = await this.serverInfo();
    const rs = await this.#rows(lockWaitSql(info));
    return rs.map((r) => ({
      waitingTrxId: String(r.w_trx),
      waitingThreadId: Number(r.w_thread),
      waitingQuery: (r.w_query as string | null) ?? null,
      waitStartedAt: (r.w_started as Date | null) ?? null,
      waitAgeSec: Number(r.w_age ?? 0),
      requestedLock: lockFrom(r, 'r', String(r.w_trx)),
      blockingTrxId: String(r.b_trx),
      blockingThreadId: Number(r.b_thread),
      blockingQuery: (r.b_query as string | null) ?? null,
      blockingLock: lockFrom(r, 'b', String(r.b_trx)),
    }));
  }

  /** `INNODB_TRX` rows, optionally filtered by state (`RUNNING`, `LOCK WAIT`, ...) and age. */
  async transactions(opts: { state?: string; minAgeSec?: number } = {}): Promise<TrxInfo[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (opts.state !== undefined) {
      where.push('trx_state = ?');
      params.push(opts.state);
    }
    if (opts.minAgeSec !== undefined) {
      if (!Number.isFinite(opts.minAgeSec) || opts.minAgeSec < 0) {
        throw new InvalidArgumentError(`minAgeSec must be a number >= 0, got ${opts.minAgeSec}`);
      }
      where.push('trx_started <= NOW() - INTERVAL ? SECOND');
      params.push(opts.minAgeSec);
    }
    const sql = `SELECT ${TRX_COLUMNS} FROM information_schema.INNODB_TRX${
      where.length ? ` WHERE ${where.join(' AND ')}` : ''
    } ORDER BY trx_started`;
    return (await this.#rows(sql, params)).map(trxFrom);
  }

  /** Transactions waiting for a lock (`trx_state = 'LOCK WAIT'`). */
  waitingTransactions(): Promise<TrxInfo[]> {
    return this.transactions({ state: 'LOCK WAIT' });
  }

  /** Transactions open longer than `thresholdSec` (seed: 30 s). */
  longRunningTransactions(thresholdSec = 30): Promise<TrxInfo[]> {
    return this.transactions({ minAgeSec: thresholdSec });
  }

  /** Lock waits older than `thresholdSec` (seed: 10 s), by `trx_wait_started`. */
  async longWaits(thresholdSec = 10): Promise<LockWait[]> {
    return (await this.currentLockWaits()).filter((w) => w.waitAgeSec >= thresholdSec);
  }

  /** The locks of the transaction running on connection `threadId` (0 is a valid id, not "all"). */
  async locksForThread(threadId: number): Promise<TableLock[]> {
    if (!Number.isInteger(threadId) || threadId < 0) {
      throw new InvalidArgumentError(`threadId must be an integer >= 0, got ${String(threadId)}`);
    }
    const [trx] = await this.#rows<{ trx_id: unknown }>(
      'SELECT trx_id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ?',
      [threadId],
    );
    if (!trx) return [];
    const trxId = String(trx.trx_id);
    return (await this.allLocks()).filter((l) => l.trxId === trxId);
  }

  /** Every lock the lock tables list (MariaDB/5.7: only locks involved in a wait). */
  async allLocks(): Promise<TableLock[]> {
    const info = await this.serverInfo();
    return (await this.#rows(allLocksSql(info))).map((r) => {
      const l: TableLock = {
        lockId: String(r.id),
        trxId: String(r.trx),
        type: String(r.type),
        mode: String(r.mode),
        table: r.sch !== undefined ? `${String(r.sch)}.${String(r.tbl)}` : unquoteTable(r.tbl),
        index: (r.idx as string | null) ?? null,
        data: (r.data as string | null) ?? null,
      };
      if (r.status !== undefined) l.status = String(r.status);
      return l;
    });
  }

  /** Nodes are transactions, edges go from the waiting one to the one it waits for. */
  async waitGraph(waits?: LockWait[]): Promise<WaitGraph> {
    const ws = waits ?? (await this.currentLockWaits());
    const nodes = new Set<string>();
    const edges: Array<{ from: string; to: string }> = [];
    const seen = new Set<string>();
    for (const w of ws) {
      nodes.add(w.waitingTrxId);
      nodes.add(w.blockingTrxId);
      const key = `${w.waitingTrxId}>${w.blockingTrxId}`;
      if (!seen.has(key)) {
        seen.add(key);
        edges.push({ from: w.waitingTrxId, to: w.blockingTrxId });
      }
    }
    return { nodes: [...nodes], edges };
  }

  /** The latest deadlock from `SHOW ENGINE INNODB STATUS` (its `Status` column), or null. */
  async latestDeadlock(): Promise<DeadlockReport | null> {
    const [row] = await this.#rows('SHOW ENGINE INNODB STATUS');
    const text = statusTextFromRow(row);
    return (text !== undefined ? parseInnodbStatus(text).latestDeadlock : undefined) ?? null;
  }

  /**
   * A full report with risks and the seed's recommendation rules. Sections that cannot be
   * read are listed in `errors` instead of being silently empty.
   */
  async generateReport(opts: { longWaitSec?: number; longTrxSec?: number } = {}): Promise<LockReport> {
    const longWaitSec = opts.longWaitSec ?? 10;
    const longTrxSec = opts.longTrxSec ?? 30;
    const errors: LockReport['errors'] = [];
    const attempt = async <T>(section: string, fn: () => Promise<T>, fallback: T): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof TxkitError)) throw err;
        errors.push({ section, code: err.code, message: err.message });
        return fallback;
      }
    };
    const server = await attempt('server', () => this.serverInfo(), null);
    const waits = await attempt('lockWaits', () => this.currentLockWaits(), [] as LockWait[]);
    const trxs = await attempt('transactions', () => this.transactions(), [] as TrxInfo[]);
    const locks = await attempt('locks', () => this.allLocks(), [] as TableLock[]);
    const latest = await attempt('latestDeadlock', () => this.latestDeadlock(), null);
    const graph = await this.waitGraph(waits);
    const risks: Risk[] = [];
    for (const cycle of findCycles(graph)) {
      risks.push({
        type: 'circular_wait',
        severity: 'high',
        trxIds: cycle,
        description: `circular wait among transactions ${cycle.join(' → ')} → ${cycle[0]}`,
      });
    }
    for (const w of waits.filter((x) => x.waitAgeSec >= longWaitSec)) {
      risks.push({
        type: 'long_wait',
        severity: 'medium',
        trxIds: [w.waitingTrxId, w.blockingTrxId],
        description: `transaction ${w.waitingTrxId} has waited ${w.waitAgeSec}s for ${w.blockingTrxId}`,
      });
    }
    const longRunning = trxs.filter((t) => t.ageSec >= longTrxSec);
    const recommendations: Recommendation[] = [];
    if (risks.some((r) => r.type === 'circular_wait')) {
      recommendations.push({
        priority: 'high',
        category: 'deadlock_prevention',
        issue: 'circular wait detected',
        recommendation: 'access resources in one consistent order (e.g. tx.lockRows with sorted keys)',
      });
    }
    if (risks.some((r) => r.type === 'long_wait')) {
      recommendations.push({
        priority: 'medium',
        category: 'performance',
        issue: 'long lock waits',
        recommendation: 'shorten the time locks are held: smaller transactions, no slow work inside them',
      });
    }
    if (risks.length > 5) {
      recommendations.push({
        priority: 'high',
        category: 'system_health',
        issue: `${risks.length} lock risks at once`,
        recommendation: 'consider optimistic locking, read/write splitting or caching',
      });
    }
    const report: LockReport = {
      reportTime: new Date().toISOString(),
      server,
      summary: {
        totalLockWaits: waits.length,
        activeTransactions: trxs.length,
        totalLocks: locks.length,
        deadlockRisks: risks.length,
      },
      currentLocks: waits,
      potentialRisks: {
        longRunningTransactions: longRunning,
        lockChains: lockChains(graph),
        deadlockRisks: risks,
        analysisTime: new Date().toISOString(),
      },
      allLocks: locks,
      recommendations,
      errors,
    };
    if (latest) report.latestDeadlock = latest;
    return report;
  }
}
