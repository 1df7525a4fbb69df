/**
 * Options of `mysql()`: the connection (a URI, mysql2 pool options, or your own mysql2
 * pool), pool limits and the engine's database options; plus the MySQL-specific
 * transaction options, validated with messages that say what is allowed.
 */
import mysql2 from 'mysql2/promise';
import type { DatabaseOptions } from '../../core/database.js';
import { InvalidOptionError } from '../../core/errors.js';
import type { MysqlFlavor } from './errors.js';

export interface MysqlOptions extends DatabaseOptions {
  /** `mysql://user:password@127.0.0.1:3306/db`. Credentials are never logged. */
  uri?: string;
  /** mysql2 pool options (host, port, user, password, database, ssl, …); merged under `uri`. */
  poolOptions?: mysql2.PoolOptions;
  /**
   * Use this mysql2 pool instead of creating one. Other code may release connections
   * into it mid-transaction, so txkit sends `ROLLBACK` on each borrowed connection before
   * beginning (see `cleanOnAcquire`). Not ended on `close()` unless `endPoolOnClose`.
   */
  pool?: mysql2.Pool;
  endPoolOnClose?: boolean;
  /** Pool size when txkit creates the pool (busy plus idle). Default 10. */
  connectionLimit?: number;
  /** Longest wait for a pooled connection before `PoolTimeoutError` (mysql2 has none). Default 10 000 ms. */
  acquireTimeoutMs?: number;
  /**
   * Send `ROLLBACK` on a borrowed connection before `START TRANSACTION`, so a connection
   * that someone released mid-transaction is never committed by our BEGIN (F10).
   * Default: true for a pool you pass in, false for the pool txkit owns (it never releases dirty).
   */
  cleanOnAcquire?: boolean;
  /** Let `START TRANSACTION`/`COMMIT`/`XA`/… through `query()`. Default false: they are rejected. */
  allowRawTransactionControl?: boolean;
}

export interface ResolvedMysqlOptions {
  pool: mysql2.Pool;
  ownsPool: boolean;
  acquireTimeoutMs: number;
  cleanOnAcquire: boolean;
  allowRawTransactionControl: boolean;
  /** How to open a side connection to the same server (KILL QUERY, diagnostics). */
  connectionConfig: mysql2.ConnectionOptions;
  database: DatabaseOptions;
}

/** Per-transaction MySQL options (pass them to `db.transaction(fn, { … })`). */
export interface MysqlTransactionOptions {
  /**
   * `innodb_lock_wait_timeout` for this transaction, in whole seconds. MariaDB accepts
   * 0..100000000 (0 = do not wait), MySQL 1..1073741824. Restored before the connection
   * goes back to the pool.
   */
  lockWaitTimeoutSec?: number;
  /** `START TRANSACTION WITH CONSISTENT SNAPSHOT`: take the snapshot now, not at the first read. */
  consistentSnapshot?: boolean;
  /** Begin as an XA branch with this gtrid, so the transaction can `prepare()` (two-phase). */
  xa?: string;
}

export const MYSQL_TRANSACTION_OPTION_KEYS = ['lockWaitTimeoutSec', 'consistentSnapshot', 'xa'] as const;

const OWN_KEYS = new Set([
  'uri',
  'poolOptions',
  'pool',
  'endPoolOnClose',
  'connectionLimit',
  'acquireTimeoutMs',
  'cleanOnAcquire',
  'allowRawTransactionControl',
]);
const DB_KEYS = new Set(['slowThresholdMs', 'maxNestingDepth', 'maxSuspendedDepth']);

function int(name: string, v: unknown, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
}

function bool(name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'boolean') throw new InvalidOptionError(`${name} must be a boolean`);
}

/** What a side connection (KILL QUERY, lock inspection) copies from a pool passed in. */
const SIDE_CONNECTION_KEYS = [
  'host',
  'port',
  'socketPath',
  'localAddress',
  'user',
  'password',
  'password1',
  'password2',
  'password3',
  'passwordSha1',
  'database',
  'ssl',
  'charsetNumber',
  'connectTimeout',
  'authPlugins',
  'enableCleartextPlugin',
  'insecureAuth',
  'connectAttributes',
  'stream',
] as const;

/** Validates `mysql()` options; creates the pool when txkit owns it. */
export function resolveMysqlOptions(options: MysqlOptions): ResolvedMysqlOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('mysql() needs an options object: { uri } or { pool } or { poolOptions }');
  }
  for (const key of Object.keys(options)) {
    if (!OWN_KEYS.has(key) && !DB_KEYS.has(key)) {
      throw new InvalidOptionError(
        `unknown mysql option '${key}'; allowed: ${[...OWN_KEYS, ...DB_KEYS].join(', ')}`,
      );
    }
  }
  const o = options;
  if (o.uri !== undefined && typeof o.uri !== 'string') throw new InvalidOptionError('uri must be a string');
  if (o.pool !== undefined && (o.uri !== undefined || o.poolOptions !== undefined)) {
    throw new InvalidOptionError('pass either pool, or uri/poolOptions, not both');
  }
  if (o.pool === undefined && o.uri === undefined && o.poolOptions === undefined) {
    throw new InvalidOptionError('mysql() needs uri, poolOptions or pool');
  }
  int('connectionLimit', o.connectionLimit, 1, 10_000);
  int('acquireTimeoutMs', o.acquireTimeoutMs, 1, 3_600_000);
  bool('cleanOnAcquire', o.cleanOnAcquire);
  bool('allowRawTransactionControl', o.allowRawTransactionControl);
  bool('endPoolOnClose', o.endPoolOnClose);
  const database: DatabaseOptions = {};
  for (const k of DB_KEYS) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) (database as Record<string, unknown>)[k] = v;
  }
  let pool: mysql2.Pool;
  let connectionConfig: mysql2.ConnectionOptions;
  if (o.pool) {
    pool = o.pool;
    // A side connection needs the pool's connection settings. The pool keeps them as a
    // parsed config with derived fields (clientFlags, maxPacketSize…) that createConnection
    // rejects with a warning, so only the settings that reach the server are copied.
    const cfg = (pool as unknown as { pool?: { config?: { connectionConfig?: Record<string, unknown> } } })
      .pool?.config?.connectionConfig;
    connectionConfig = {};
    for (const k of SIDE_CONNECTION_KEYS) {
      if (cfg?.[k] !== undefined) (connectionConfig as Record<string, unknown>)[k] = cfg[k];
    }
  } else {
    const base: mysql2.PoolOptions = {
      // txkit wraps every driver error in its own (with a stack); mysql2's per-query stack
      // capture would cost a few µs per statement for nothing. Pass trace: true to keep it.
      trace: false,
      ...(o.poolOptions ?? {}),
      ...(o.uri !== undefined ? { uri: o.uri } : {}),
      connectionLimit: o.connectionLimit ?? o.poolOptions?.connectionLimit ?? 10,
      // Never injection-friendly, whatever the caller passed.
      multipleStatements: false,
    };
    pool = mysql2.createPool(base);
    const {
      connectionLimit: _l,
      queueLimit: _q,
      waitForConnections: _w,
      maxIdle: _m,
      idleTimeout: _i,
      ...rest
    } = base as Record<string, unknown>;
    connectionConfig = rest as mysql2.ConnectionOptions;
  }
  return {
    pool,
    ownsPool: o.pool === undefined || o.endPoolOnClose === true,
    acquireTimeoutMs: o.acquireTimeoutMs ?? 10_000,
    cleanOnAcquire: o.cleanOnAcquire ?? o.pool !== undefined,
    allowRawTransactionControl: o.allowRawTransactionControl ?? false,
    connectionConfig,
    database,
  };
}

/** Validates `lockWaitTimeoutSec` for the flavour (0 is honoured on MariaDB, never "unset"). */
export function checkLockWaitTimeout(v: unknown, flavor: MysqlFlavor): number | undefined {
  if (v === undefined) return undefined;
  const [min, max] = flavor === 'mariadb' ? [0, 100_000_000] : [1, 1_073_741_824];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(
      `lockWaitTimeoutSec must be an integer number of seconds in ${min}..${max} on ${flavor}, got ${String(v)}`,
    );
  }
  return v;
}
