/**
 * Transaction options: the one options object every entry point (db.transaction,
 * transactional, @Transactional, db.begin) accepts, validated with messages that say
 * what is allowed.
 */
import { InvalidOptionError } from './errors.js';
import { ISOLATION_LEVELS, type IsolationLevel } from './resource.js';
import { type ResolvedRetryPolicy, type RetryPolicy, resolveRetry } from './retry.js';

export type Propagation =
  | 'required'
  | 'requires_new'
  | 'nested'
  | 'supports'
  | 'not_supported'
  | 'never'
  | 'mandatory';

export const PROPAGATIONS: readonly Propagation[] = [
  'required',
  'requires_new',
  'nested',
  'supports',
  'not_supported',
  'never',
  'mandatory',
];

/** Propagations that may run the callback without any transaction. */
export type NonTransactionalPropagation = 'supports' | 'not_supported' | 'never';

export interface TransactionOptions {
  /** Label for events, metrics and error messages. */
  name?: string;
  /** Requested isolation level; `tx.isolation` reports what the backend really gives. Default: the backend's. */
  isolation?: IsolationLevel;
  readOnly?: boolean;
  /** PostgreSQL: with `serializable` + `readOnly`, wait for a safe snapshot instead of risking failure. */
  deferrable?: boolean;
  /**
   * How to relate to a transaction already open in this async context (Spring semantics).
   * Default: a new transaction at top level, a savepoint (`'nested'`) inside one.
   */
  propagation?: Propagation;
  /** Retry the whole transaction on retryable errors. Off by default. Only the owner of the transaction retries. */
  retry?: RetryPolicy | boolean;
  /** Deadline for the transaction, from BEGIN; enforced while it runs (statements are cancelled). */
  timeoutMs?: number;
  /** Emit a `slow` event when a transaction takes longer than this. Default: the database's (1000 ms). */
  slowThresholdMs?: number;
  /** Abort the transaction (roll back) when this signal fires. */
  signal?: AbortSignal;
  /** Only errors for which this returns true roll back; others commit, then rethrow. Default: all roll back. */
  rollbackOn?: (err: unknown) => boolean;
  /** Errors for which this returns true commit, then rethrow (Spring `noRollbackFor`). Wins over `rollbackOn`. */
  noRollbackOn?: (err: unknown) => boolean;
  /** Backend-specific options (e.g. SQLite `beginMode`, PostgreSQL `lockTimeoutMs`), validated by the backend. */
  [backendOption: string]: unknown;
}

/** Options after validation, with the engine's own keys separated from backend extras. */
export interface ResolvedOptions {
  name: string | undefined;
  isolation: IsolationLevel | undefined;
  readOnly: boolean;
  deferrable: boolean;
  propagation: Propagation | undefined;
  retry: ResolvedRetryPolicy | undefined;
  timeoutMs: number | undefined;
  slowThresholdMs: number | undefined;
  signal: AbortSignal | undefined;
  rollbackOn: ((err: unknown) => boolean) | undefined;
  noRollbackOn: ((err: unknown) => boolean) | undefined;
  extra: Record<string, unknown>;
}

const ENGINE_KEYS = new Set([
  'name',
  'isolation',
  'readOnly',
  'deferrable',
  'propagation',
  'retry',
  'timeoutMs',
  'slowThresholdMs',
  'signal',
  'rollbackOn',
  'noRollbackOn',
]);

const EMPTY: ResolvedOptions = Object.freeze({
  name: undefined,
  isolation: undefined,
  readOnly: false,
  deferrable: false,
  propagation: undefined,
  retry: undefined,
  timeoutMs: undefined,
  slowThresholdMs: undefined,
  signal: undefined,
  rollbackOn: undefined,
  noRollbackOn: undefined,
  extra: Object.freeze({}) as Record<string, unknown>,
});

const list = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');

/**
 * Validates options. `backendKeys` lists the extra keys the backend understands; any
 * other unknown key is rejected (a typo must not silently do nothing).
 */
export function resolveOptions(
  options: TransactionOptions | undefined,
  backendKeys: ReadonlySet<string>,
): ResolvedOptions {
  if (options === undefined) return EMPTY;
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError(`transaction options must be an object, got ${String(options)}`);
  }
  const o = options;
  if (o.name !== undefined && typeof o.name !== 'string') {
    throw new InvalidOptionError(`name must be a string, got ${typeof o.name}`);
  }
  if (o.isolation !== undefined && !ISOLATION_LEVELS.includes(o.isolation)) {
    throw new InvalidOptionError(
      `isolation must be one of ${list(ISOLATION_LEVELS)}, got ${JSON.stringify(o.isolation)}`,
    );
  }
  for (const flag of ['readOnly', 'deferrable'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') {
      throw new InvalidOptionError(`${flag} must be a boolean, got ${JSON.stringify(o[flag])}`);
    }
  }
  if (o.propagation !== undefined && !PROPAGATIONS.includes(o.propagation)) {
    throw new InvalidOptionError(
      `propagation must be one of ${list(PROPAGATIONS)}, got ${JSON.stringify(o.propagation)}`,
    );
  }
  for (const ms of ['timeoutMs', 'slowThresholdMs'] as const) {
    const v = o[ms];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)) {
      throw new InvalidOptionError(`${ms} must be a finite number of milliseconds > 0, got ${String(v)}`);
    }
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new InvalidOptionError('signal must be an AbortSignal');
  }
  for (const fn of ['rollbackOn', 'noRollbackOn'] as const) {
    if (o[fn] !== undefined && typeof o[fn] !== 'function') {
      throw new InvalidOptionError(`${fn} must be a function (err) => boolean`);
    }
  }
  const extra: Record<string, unknown> = {};
  for (const key of Object.keys(o)) {
    if (ENGINE_KEYS.has(key)) continue;
    if (!backendKeys.has(key)) {
      throw new InvalidOptionError(
        `unknown transaction option '${key}'; allowed: ${[...ENGINE_KEYS, ...backendKeys].join(', ')}`,
      );
    }
    if (o[key] !== undefined) extra[key] = o[key];
  }
  return {
    name: o.name,
    isolation: o.isolation,
    readOnly: o.readOnly ?? false,
    deferrable: o.deferrable ?? false,
    propagation: o.propagation,
    retry: resolveRetry(o.retry),
    timeoutMs: o.timeoutMs,
    slowThresholdMs: o.slowThresholdMs,
    signal: o.signal,
    rollbackOn: o.rollbackOn,
    noRollbackOn: o.noRollbackOn,
    extra,
  };
}

/** Should this error roll the transaction back? (Spring rules: `noRollbackOn` wins.) */
export function rollsBack(opts: ResolvedOptions, err: unknown): boolean {
  if (opts.noRollbackOn?.(err)) return false;
  return opts.rollbackOn ? opts.rollbackOn(err) : true;
}
