/**
 * One better-sqlite3 connection: opened with whitelisted pragmas that are read back and
 * verified, a bounded prepared-statement cache, and busy handling that never blocks the
 * event loop for long (a short SQLite busy_timeout per attempt, async backoff between).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { BusyError, InvalidOptionError } from '../../core/errors.js';
import { waitFor } from '../../core/retry.js';
import { classifySqliteError, isBusy } from './errors.js';
import type { ResolvedSqliteOptions } from './options.js';

type Driver = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;

const SYNC_LEVEL = { off: 0, normal: 1, full: 2, extra: 3 } as const;
const TEMP_STORE = { default: 0, file: 1, memory: 2 } as const;

/** The pragma values a connection really runs with, read back after setting them. */
export interface EffectivePragmas {
  journalMode: string;
  synchronous: number;
  foreignKeys: boolean;
  busyTimeout: number;
}

export class SqliteConnection {
  readonly driver: Driver;
  readonly #cache = new Map<string, Statement>();
  readonly #control = new Map<string, Statement>();
  readonly effective: EffectivePragmas;

  constructor(
    readonly options: ResolvedSqliteOptions,
    readonly role: 'writer' | 'reader' | 'aux',
  ) {
    const readonly = options.readonly || role === 'reader';
    if (!options.memory && !readonly && !options.fileMustExist)
      mkdirSync(dirname(options.filename), { recursive: true });
    try {
      this.driver = new BetterSqlite3(options.filename, {
        readonly,
        fileMustExist: options.fileMustExist || role === 'reader',
        timeout: options.busyWaitMs,
      });
    } catch (err) {
      throw classifySqliteError(err);
    }
    try {
      if (options.safeIntegers) this.driver.defaultSafeIntegers(true);
      this.effective = this.#configure(readonly);
    } catch (err) {
      this.driver.close();
      throw classifySqliteError(err);
    }
  }

  #pragma(sql: string): unknown {
    return this.driver.pragma(sql, { simple: true });
  }

  #configure(readonly: boolean): EffectivePragmas {
    const o = this.options;
    // Connection settings go at open, outside any transaction (inside one they are silently ignored).
    this.#pragma(`busy_timeout = ${o.busyWaitMs}`);
    if (!readonly) {
      const mode = String(this.#pragma(`journal_mode = ${o.journalMode.toUpperCase()}`)).toLowerCase();
      if (mode !== o.journalMode) {
        throw new InvalidOptionError(
          `journal_mode ${o.journalMode} was not applied: SQLite reports '${mode}'`,
        );
      }
    }
    this.#pragma(`synchronous = ${SYNC_LEVEL[o.synchronous]}`);
    this.#pragma(`foreign_keys = ${o.foreignKeys ? 'ON' : 'OFF'}`);
    if (o.cacheSizeKiB !== undefined) this.#pragma(`cache_size = ${-o.cacheSizeKiB}`);
    if (o.tempStore !== undefined) this.#pragma(`temp_store = ${TEMP_STORE[o.tempStore]}`);
    if (o.mmapSize !== undefined) this.#pragma(`mmap_size = ${o.mmapSize}`);
    if (!readonly && o.walAutocheckpointPages !== undefined)
      this.#pragma(`wal_autocheckpoint = ${o.walAutocheckpointPages}`);
    if (!readonly && o.journalSizeLimit !== undefined)
      this.#pragma(`journal_size_limit = ${o.journalSizeLimit}`);

    const effective: EffectivePragmas = {
      journalMode: String(this.#pragma('journal_mode')).toLowerCase(),
      synchronous: Number(this.#pragma('synchronous')),
      foreignKeys: Number(this.#pragma('foreign_keys')) === 1,
      busyTimeout: Number(this.#pragma('busy_timeout')),
    };
    if (effective.synchronous !== SYNC_LEVEL[o.synchronous]) {
      throw new InvalidOptionError(
        `synchronous ${o.synchronous} was not applied (reads back ${effective.synchronous})`,
      );
    }
    if (effective.foreignKeys !== o.foreignKeys) {
      throw new InvalidOptionError(`foreign_keys ${o.foreignKeys ? 'ON' : 'OFF'} was not applied`);
    }
    return effective;
  }

  /**
   * A prepared user statement from the bounded cache (oldest evicted). `guard` runs only
   * when the statement is prepared, so a cached statement costs one map lookup.
   */
  prepare(sql: string, guard?: (sql: string) => void): Statement {
    const cached = this.#cache.get(sql);
    if (cached) return cached;
    guard?.(sql);
    const stmt = this.driver.prepare(sql);
    const limit = this.options.statementCacheSize;
    if (limit > 0) {
      if (this.#cache.size >= limit) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }

  /** Runs one of txkit's own control statements (BEGIN, COMMIT, SAVEPOINT ...), cached apart from user SQL. */
  control(sql: string): void {
    let stmt = this.#control.get(sql);
    if (!stmt) {
      stmt = this.driver.prepare(sql);
      if (this.#control.size >= 256) this.#control.clear();
      this.#control.set(sql, stmt);
    }
    stmt.run();
  }

  get inTransaction(): boolean {
    return this.driver.inTransaction;
  }

  /**
   * Runs `op`, retrying SQLITE_BUSY asynchronously until the busy budget is spent. Only
   * for steps SQLite allows to repeat: BEGIN, COMMIT and autocommit statements.
   */
  async retryBusy<T>(op: () => T, what: string, budgetMs = this.options.busyTimeoutMs): Promise<T> {
    try {
      return op();
    } catch (first) {
      if (!isBusy(first)) throw classifySqliteError(first);
      const start = performance.now();
      let delay = 1;
      let last: unknown = first;
      for (;;) {
        const waited = performance.now() - start + this.options.busyWaitMs;
        if (waited >= budgetMs) {
          throw new BusyError(
            `${what}: the database stayed locked by another connection for ${Math.round(waited)} ms (busyTimeoutMs ${budgetMs})`,
            'timeout',
            { cause: last, driverCode: (last as { code?: string }).code ?? 'SQLITE_BUSY' },
          );
        }
        await waitFor(Math.min(delay * (0.5 + Math.random()), budgetMs - waited));
        delay = Math.min(delay * 2, 25);
        try {
          return op();
        } catch (err) {
          if (!isBusy(err)) throw classifySqliteError(err);
          last = err;
        }
      }
    }
  }

  close(): void {
    this.#cache.clear();
    this.#control.clear();
    if (this.driver.open) this.driver.close();
  }
}
