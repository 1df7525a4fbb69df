/**
 * Watches a server for deadlocks. Each poll reads the deadlock counter
 * (`Innodb_deadlocks` on MariaDB, `INNODB_METRICS.lock_deadlocks` on MySQL) and, when it
 * rose, the latest report from `SHOW ENGINE INNODB STATUS`. A report is emitted once:
 * reports are keyed by their timestamp line plus the sorted transaction ids, so the same
 * deadlock seen on many polls counts once, and a counter that rose by more than one between
 * polls says how many dumps were missed (only the latest is kept by the server).
 *
 * A reported deadlock is already resolved: InnoDB rolled the victim back. "Recovery" is
 * the victim's retry, which the transaction engine does; this only observes.
 */
import { InvalidOptionError } from '../../core/errors.js';
import { EventHub } from '../../core/events.js';
import type { DeadlockReport } from './deadlock-parser.js';
import { LockInspector } from './lock-inspector.js';
import { type MysqlQueryable, rows, type ServerInfo } from './server-info.js';

export interface DeadlockMonitorEvents {
  /** A deadlock not seen before. `missedCount`: deadlocks in between whose dumps were overwritten. */
  deadlock: { report: DeadlockReport; missedCount: number };
  poll: { counter: number | null; newDeadlocks: number; durationMs: number };
  error: { source: string; error: unknown };
}

export interface DeadlockMonitorOptions {
  /** Between polls. Default 5000 (seed). */
  pollIntervalMs?: number;
  /** After a failed poll. Default 10000 (seed). */
  errorBackoffMs?: number;
}

export interface DeadlockStats {
  /** Deadlocks the server counted since the monitor's first poll. */
  totalDeadlocks: number;
  /** Distinct reports emitted. */
  reportedDeadlocks: number;
  lastDetectedAt: string | null;
  byTable: Record<string, number>;
  byQueryFingerprint: Record<string, number>;
}

/** A query with its literals replaced by `?`, so similar statements group together. */
export function fingerprint(sql: string): string {
  return sql
    .replace(/'(?:[^'\\]|\\.|'')*'/g, '?')
    .replace(/"(?:[^"\\]|\\.|"")*"/g, '?')
    .replace(/\b\d+(?:\.\d+)?\b/g, '?')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The identity of one deadlock: its timestamp line plus its sorted transaction ids. */
export function deadlockKey(report: DeadlockReport): string {
  const ids = report.transactions.map((t) => t.trxId).sort();
  return `${report.detectedAt}|${ids.join(',')}`;
}

function checkMs(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 10)
    throw new InvalidOptionError(`${name} must be a number of milliseconds >= 10, got ${v}`);
  return v;
}

/**
 * @example
 * const monitor = new DeadlockMonitor(pool, { pollIntervalMs: 5_000 });
 * monitor.on('deadlock', ({ report }) => log.warn({ victim: report.victimIndex }, 'deadlock'));
 * monitor.start();
 * // ...
 * await monitor.stop();
 */
export class DeadlockMonitor {
  readonly events = new EventHub<DeadlockMonitorEvents>('txkit:mysql:deadlock-monitor:');
  readonly #inspector: LockInspector;
  readonly #interval: number;
  readonly #backoff: number;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #running = false;
  #queue: Promise<void> = Promise.resolve();
  #lastCounter: number | null | undefined;
  readonly #seen = new Set<string>();
  readonly #stats: DeadlockStats = {
    totalDeadlocks: 0,
    reportedDeadlocks: 0,
    lastDetectedAt: null,
    byTable: {},
    byQueryFingerprint: {},
  };

  constructor(
    private readonly q: MysqlQueryable,
    opts: DeadlockMonitorOptions = {},
    info?: ServerInfo,
  ) {
    this.#inspector = new LockInspector(q, info);
    this.#interval = checkMs('pollIntervalMs', opts.pollIntervalMs, 5_000);
    this.#backoff = checkMs('errorBackoffMs', opts.errorBackoffMs, 10_000);
  }

  on<K extends keyof DeadlockMonitorEvents>(
    event: K,
    listener: (p: DeadlockMonitorEvents[K]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  get running(): boolean {
    return this.#running;
  }

  /** Starts polling (first poll right away). Calling it again while running does nothing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Stops polling and waits for a poll in flight. Idempotent. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inflight;
  }

  stats(): DeadlockStats {
    return structuredClone(this.#stats);
  }

  #schedule(ms: number): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#inflight = this.pollOnce().then(
        () => this.#schedule(this.#interval),
        () => this.#schedule(this.#backoff),
      );
    }, ms);
    this.#timer.unref();
  }

  async #counter(): Promise<number | null> {
    const info = await this.#inspector.serverInfo();
    if (info.flavor === 'mariadb') {
      const [r] = await rows<{ Value: string }>(
        this.q,
        "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'",
        [],
        info.flavor,
      );
      return r ? Number(r.Value) : null;
    }
    const [r] = await rows<{ c: number }>(
      this.q,
      "SELECT `COUNT` AS c FROM information_schema.INNODB_METRICS WHERE NAME = 'lock_deadlocks'",
      [],
      info.flavor,
    );
    return r ? Number(r.c) : null;
  }

  /**
   * One poll: reads the counter and, when it rose (or cannot be read), the latest report.
   * Returns the report when it is new. Polls never overlap: a second call waits for the first.
   */
  pollOnce(): Promise<DeadlockReport | undefined> {
    const run = this.#queue.then(() => this.#poll());
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #poll(): Promise<DeadlockReport | undefined> {
    const started = performance.now();
    try {
      const counter = await this.#counter();
      const first = this.#lastCounter === undefined;
      const rose =
        counter === null || this.#lastCounter === null ? null : counter - (this.#lastCounter ?? counter);
      this.#lastCounter = counter;
      let fresh: DeadlockReport | undefined;
      if (first) {
        // Baseline: whatever the server shows now happened before we started watching.
        const latest = await this.#inspector.latestDeadlock();
        if (latest) this.#remember(deadlockKey(latest));
      } else if (rose === null || rose > 0) {
        if (rose !== null) this.#stats.totalDeadlocks += rose;
        const latest = await this.#inspector.latestDeadlock();
        if (latest) {
          const key = deadlockKey(latest);
          if (!this.#seen.has(key)) {
            this.#remember(key);
            if (rose === null) this.#stats.totalDeadlocks += 1;
            fresh = latest;
            this.#record(latest);
            this.events.emit('deadlock', { report: latest, missedCount: Math.max(0, (rose ?? 1) - 1) });
          }
        }
      }
      this.events.emit('poll', {
        counter,
        newDeadlocks: rose ?? (fresh ? 1 : 0),
        durationMs: performance.now() - started,
      });
      return fresh;
    } catch (error) {
      this.events.emit('error', { source: 'deadlock-monitor', error });
      throw error;
    }
  }

  #remember(key: string): void {
    this.#seen.add(key);
    // Keep the dedupe set bounded; only recent reports can reappear.
    if (this.#seen.size > 1000) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest); // never the key just added: the set holds > 1000
    }
  }

  #record(report: DeadlockReport): void {
    this.#stats.reportedDeadlocks += 1;
    this.#stats.lastDetectedAt = report.detectedAt;
    const tables = new Set<string>();
    for (const t of report.transactions) {
      if (t.waitingFor) tables.add(t.waitingFor.table);
      if (t.query) {
        const fp = fingerprint(t.query);
        this.#stats.byQueryFingerprint[fp] = (this.#stats.byQueryFingerprint[fp] ?? 0) + 1;
      }
    }
    for (const table of tables) this.#stats.byTable[table] = (this.#stats.byTable[table] ?? 0) + 1;
  }
}
