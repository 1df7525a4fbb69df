/**
 * The `tx` a MySQL transaction callback receives: the engine's Transaction plus
 * `lockRows()` (lock a set of rows in one canonical order) and the connection's thread id.
 */
import { InvalidArgumentError, TxkitError, UnsupportedFeatureError } from '../../core/errors.js';
import { Transaction } from '../../core/transaction.js';
import { MysqlTx } from './mysql-tx.js';
import { quoteName, quoteTable } from './names.js';

export type RowKey = string | number | bigint;

export interface LockRowsOptions {
  /** Column the keys are values of. Default `id`. */
  keyColumn?: string;
  /** `update`: `FOR UPDATE` (exclusive). `share`: `LOCK IN SHARE MODE` (MariaDB has no `FOR SHARE`). Default `update`. */
  mode?: 'update' | 'share';
  /** `nowait`: fail at once when a row is locked; n: wait at most n seconds (MariaDB `WAIT n`). */
  wait?: 'nowait' | number;
  /** Skip rows another transaction has locked (MySQL 8.0.1+, MariaDB 10.6+); they are reported missing. */
  skipLocked?: boolean;
  /** Report absent keys in `missing` instead of throwing. Default false. */
  allowMissing?: boolean;
}

export interface LockedRows<R, K extends RowKey> {
  rows: Map<K, R>;
  missing: K[];
}

/** Some keys matched no row (and `allowMissing` was not set). */
export class RowNotFoundError extends TxkitError {
  readonly missing: readonly RowKey[];
  constructor(table: string, missing: readonly RowKey[]) {
    super('E_NOT_FOUND', `no row in ${table} for key(s) ${missing.map(String).join(', ')}`);
    this.missing = missing;
  }
}

function sortKeys<K extends RowKey>(keys: readonly K[]): K[] {
  const kinds = new Set(keys.map((k) => typeof k));
  if (kinds.size > 1 || ![...kinds].every((t) => t === 'string' || t === 'number' || t === 'bigint')) {
    throw new InvalidArgumentError('lockRows keys must all be strings, or all numbers/bigints');
  }
  for (const k of keys) {
    if (typeof k === 'number' && !Number.isFinite(k)) throw new InvalidArgumentError(`bad key ${k}`);
  }
  const unique = [...new Set(keys)];
  return unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export class MysqlTransaction extends Transaction {
  /** The server connection id of this transaction (`CONNECTION_ID()`). */
  get threadId(): number {
    const h = this.physical.handle;
    return h instanceof MysqlTx ? h.threadId : -1;
  }

  /**
   * Inserts many rows with one `INSERT INTO t (c1, c2) VALUES (…), (…)` statement. Table and
   * column names are validated and quoted; values are escaped by the driver.
   *
   * @example
   * await tx.insertMany('ledger', ['account_id', 'amount'], [[1, '-100.00'], [2, '100.00']]);
   */
  async insertMany(
    table: string,
    columns: readonly string[],
    rows: readonly (readonly unknown[])[],
  ): Promise<{ rowsAffected: number; firstInsertId?: number | bigint | string }> {
    const t = quoteTable(table);
    if (!Array.isArray(columns) || columns.length === 0)
      throw new InvalidArgumentError('columns must be a non-empty array');
    const cols = columns.map((c) => quoteName(c, 'column name')).join(', ');
    if (!Array.isArray(rows)) throw new InvalidArgumentError('rows must be an array of arrays');
    for (const [i, r] of rows.entries()) {
      if (!Array.isArray(r) || r.length !== columns.length) {
        throw new InvalidArgumentError(`row ${i} must be an array of ${columns.length} values`);
      }
    }
    if (rows.length === 0) return { rowsAffected: 0 };
    const r = await this.execute(`INSERT INTO ${t} (${cols}) VALUES ?`, [rows]);
    // A multi-row INSERT reports the first generated id.
    return r.lastInsertId === undefined
      ? { rowsAffected: r.rowsAffected }
      : { rowsAffected: r.rowsAffected, firstInsertId: r.lastInsertId };
  }

  /**
   * Locks the rows of `table` whose `keyColumn` is in `keys`, in one canonical order (one
   * statement that walks the index in key order, keys deduplicated and sorted), so two
   * transactions that lock overlapping sets never wait for each other in a cycle.
   *
   * @example
   * await db.transaction(async (tx) => {
   *   const { rows } = await tx.lockRows<{ id: number; balance: string }>('accounts', [to, from]);
   *   // both rows are locked; move money with atomic updates
   * });
   */
  async lockRows<R = Record<string, unknown>, K extends RowKey = RowKey>(
    table: string,
    keys: readonly K[],
    opts: LockRowsOptions = {},
  ): Promise<LockedRows<R, K>> {
    const t = quoteTable(table);
    const col = quoteName(opts.keyColumn ?? 'id', 'key column');
    const mode = opts.mode ?? 'update';
    if (mode !== 'update' && mode !== 'share')
      throw new InvalidArgumentError(`mode must be 'update' or 'share', got ${String(mode)}`);
    if (!Array.isArray(keys)) throw new InvalidArgumentError('keys must be an array');
    const sorted = sortKeys(keys);
    if (sorted.length === 0) return { rows: new Map(), missing: [] };
    const h = this.physical.handle;
    if (!(h instanceof MysqlTx)) throw new UnsupportedFeatureError('lockRows needs a MySQL transaction');
    const flavor = h.facts.info.flavor;
    let clause =
      mode === 'update'
        ? 'FOR UPDATE'
        : flavor === 'mysql' && opts.wait !== undefined
          ? 'FOR SHARE'
          : 'LOCK IN SHARE MODE';
    if (opts.wait === 'nowait') clause += ' NOWAIT';
    else if (typeof opts.wait === 'number') {
      if (!Number.isInteger(opts.wait) || opts.wait < 0 || opts.wait > 100_000_000) {
        throw new InvalidArgumentError(
          `wait must be 'nowait' or whole seconds 0..100000000, got ${opts.wait}`,
        );
      }
      if (flavor === 'mysql') {
        throw new UnsupportedFeatureError(
          "MySQL has no WAIT n: use wait: 'nowait' or the lockWaitTimeoutSec transaction option",
        );
      }
      clause += ` WAIT ${opts.wait}`;
    } else if (opts.wait !== undefined) {
      throw new InvalidArgumentError(`wait must be 'nowait' or whole seconds, got ${String(opts.wait)}`);
    }
    if (opts.skipLocked) clause += ' SKIP LOCKED';
    const sql = `SELECT * FROM ${t} WHERE ${col} IN (?) ORDER BY ${col} ${clause}`;
    this.assertUsable();
    const result = (await this.physical.track(
      h.run(sql, [sorted], { nowait: opts.wait !== undefined }),
    )) as Record<string, unknown>[];
    const rows = new Map<K, R>();
    const byKey = new Map(sorted.map((k) => [String(k), k] as const));
    for (const r of result) {
      const k = byKey.get(String(r[opts.keyColumn ?? 'id']));
      if (k !== undefined) rows.set(k, r as R);
    }
    const missing = sorted.filter((k) => !rows.has(k));
    if (missing.length > 0 && !opts.allowMissing && !opts.skipLocked)
      throw new RowNotFoundError(table, missing);
    return { rows, missing };
  }
}
