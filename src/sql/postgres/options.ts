/**
 * Options of `postgres()`: the connection (a connection string, a `pg.PoolConfig`, or
 * your own `pg.Pool`), pool limits, and the engine's database options; plus the
 * PostgreSQL-specific transaction options, validated with messages that say what is allowed.
 */
import type pg from 'pg';
import type { DatabaseOptions } from '../../core/database.js';
import { InvalidOptionError } from '../../core/errors.js';
import { type StatementNames, statementNamesFor } from './statement-names.js';

export interface PostgresOptions extends DatabaseOptions {
  /** `postgres://user@host:port/db`. Credentials are never logged. */
  connectionString?: string;
  /** Full `pg.PoolConfig` (host, port, user, ssl, max, …); merged under `connectionString`. */
  poolConfig?: pg.PoolConfig;
  /** Use this pool instead of creating one. txkit does not end it on `close()` unless `endPoolOnClose`. */
  pool?: pg.Pool;
  endPoolOnClose?: boolean;
  /** Pool size when txkit creates the pool. Default 10 (pg's default). */
  max?: number;
  /**
   * How long to wait for a pooled connection before failing with `PoolTimeoutError`.
   * Default 30 000 ms: a starved pool (e.g. `requires_new` under load) fails loudly instead of hanging.
   */
  acquireTimeoutMs?: number;
  /** Default `lockTimeoutMs` of a transaction begun while another of this database is suspended. Default 5 000. */
  suspendedLockTimeoutMs?: number;
  /** Let `BEGIN`/`COMMIT`/`SAVEPOINT`… through `query()`. Default false: they are rejected. */
  allowRawTransactionControl?: boolean;
  /**
   * Prepare each distinct statement text once per connection (a named statement) and then
   * send only its parameters: the server skips parsing and planning it again. Default false.
   * Not behind a pooler in transaction mode that does not track prepared statements; a
   * connection whose statement went stale after a schema change is discarded.
   */
  prepareStatements?: boolean;
}

export interface ResolvedPostgresOptions {
  pool: pg.Pool;
  ownsPool: boolean;
  acquireTimeoutMs: number;
  suspendedLockTimeoutMs: number;
  allowRawTransactionControl: boolean;
  /** Names for prepared statements (shared by every database on the pool), when `prepareStatements` is on. */
  statementNames: StatementNames | undefined;
  /** What a fresh pg.Client needs to reach the same server (the notifier uses it). */
  clientConfig: pg.ClientConfig;
  database: DatabaseOptions;
}

/** Per-transaction PostgreSQL options (pass them to `db.transaction(fn, { … })`). */
export interface PostgresTransactionOptions {
  /** `SET LOCAL statement_timeout` (ms, 0 = off). A statement running longer fails with 57014. */
  statementTimeoutMs?: number;
  /** `SET LOCAL lock_timeout` (ms, 0 = off). A lock wait longer than this fails with 55P03. */
  lockTimeoutMs?: number;
  /** `SET LOCAL idle_in_transaction_session_timeout` (ms, 0 = off). The server ends the session. */
  idleInTransactionTimeoutMs?: number;
  /** `'relaxed'`: `SET LOCAL synchronous_commit = off` (a crash may lose the last commits). Default `'strict'`. */
  durability?: 'strict' | 'relaxed';
}

export const PG_TRANSACTION_OPTION_KEYS = [
  'statementTimeoutMs',
  'lockTimeoutMs',
  'idleInTransactionTimeoutMs',
  'durability',
] as const;

const POSTGRES_KEYS = new Set([
  'connectionString',
  'poolConfig',
  'pool',
  'endPoolOnClose',
  'max',
  'acquireTimeoutMs',
  'suspendedLockTimeoutMs',
  'allowRawTransactionControl',
  'prepareStatements',
  'slowThresholdMs',
  'maxNestingDepth',
  'maxSuspendedDepth',
]);

/** A non-negative integer number of milliseconds, or undefined. */
export function checkMs(
  name: string,
  v: unknown,
  min = 0,
  unit = 'number of milliseconds',
): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2_147_483_647) {
    throw new InvalidOptionError(`${name} must be an integer ${unit} >= ${min}, got ${String(v)}`);
  }
  return v;
}

export function resolvePostgresOptions(
  options: PostgresOptions,
  Pool: typeof pg.Pool,
): ResolvedPostgresOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('postgres() needs an options object: { connectionString } or { pool }');
  }
  for (const key of Object.keys(options)) {
    if (!POSTGRES_KEYS.has(key)) {
      throw new InvalidOptionError(
        `unknown postgres option '${key}'; allowed: ${[...POSTGRES_KEYS].join(', ')}`,
      );
    }
  }
  const { connectionString, poolConfig, pool } = options;
  if (pool === undefined && connectionString === undefined && poolConfig === undefined) {
    throw new InvalidOptionError('postgres() needs connectionString, poolConfig or pool');
  }
  if (
    pool !== undefined &&
    (connectionString !== undefined || poolConfig !== undefined || options.max !== undefined)
  ) {
    throw new InvalidOptionError(
      'postgres(): give either pool, or connectionString/poolConfig/max, not both',
    );
  }
  if (connectionString !== undefined && typeof connectionString !== 'string') {
    throw new InvalidOptionError('connectionString must be a string');
  }
  for (const k of ['allowRawTransactionControl', 'prepareStatements', 'endPoolOnClose'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') {
      throw new InvalidOptionError(`${k} must be true or false, got ${String(options[k])}`);
    }
  }
  const max = checkMs('max', options.max, 1, 'number of connections');
  const acquireTimeoutMs = checkMs('acquireTimeoutMs', options.acquireTimeoutMs, 1) ?? 30_000;
  const suspendedLockTimeoutMs =
    checkMs('suspendedLockTimeoutMs', options.suspendedLockTimeoutMs, 0) ?? 5_000;
  const database: DatabaseOptions = {};
  for (const k of ['slowThresholdMs', 'maxNestingDepth', 'maxSuspendedDepth'] as const) {
    if (options[k] !== undefined) database[k] = options[k];
  }
  let clientConfig: pg.ClientConfig;
  let thePool: pg.Pool;
  if (pool !== undefined) {
    if (!(pool instanceof Pool)) throw new InvalidOptionError('pool must be a pg.Pool');
    thePool = pool;
    clientConfig = { ...pool.options };
  } else {
    const config: pg.PoolConfig = { ...(poolConfig ?? {}) };
    if (connectionString !== undefined) config.connectionString = connectionString;
    if (max !== undefined) config.max = max;
    thePool = new Pool(config);
    clientConfig = { ...config };
  }
  for (const k of [
    'max',
    'min',
    'idleTimeoutMillis',
    'maxUses',
    'maxLifetimeSeconds',
    'allowExitOnIdle',
    'log',
    'Client',
  ]) {
    delete (clientConfig as Record<string, unknown>)[k];
  }
  return {
    pool: thePool,
    ownsPool: pool === undefined || options.endPoolOnClose === true,
    acquireTimeoutMs,
    suspendedLockTimeoutMs,
    allowRawTransactionControl: options.allowRawTransactionControl === true,
    statementNames: options.prepareStatements === true ? statementNamesFor(thePool) : undefined,
    clientConfig,
    database,
  };
}

/** Validated per-transaction options from the engine's `extra` bag. */
export function resolveTxOptions(extra: Readonly<Record<string, unknown>>): PostgresTransactionOptions {
  const out: PostgresTransactionOptions = {};
  const st = checkMs('statementTimeoutMs', extra.statementTimeoutMs);
  if (st !== undefined) out.statementTimeoutMs = st;
  const lt = checkMs('lockTimeoutMs', extra.lockTimeoutMs);
  if (lt !== undefined) out.lockTimeoutMs = lt;
  const it = checkMs('idleInTransactionTimeoutMs', extra.idleInTransactionTimeoutMs);
  if (it !== undefined) out.idleInTransactionTimeoutMs = it;
  if (extra.durability !== undefined) {
    if (extra.durability !== 'strict' && extra.durability !== 'relaxed') {
      throw new InvalidOptionError(
        `durability must be 'strict' or 'relaxed', got ${JSON.stringify(extra.durability)}`,
      );
    }
    out.durability = extra.durability;
  }
  return out;
}
