/**
 * SQLite options: every PRAGMA txkit sets comes from a whitelist of names and values —
 * SQLite itself silently accepts nonsense (`PRAGMA synchronous='bogus'` becomes NORMAL).
 */
import type { DatabaseOptions } from '../../core/database.js';
import { InvalidOptionError } from '../../core/errors.js';

export type JournalMode = 'wal' | 'delete' | 'truncate' | 'persist' | 'memory' | 'off';
export type Synchronous = 'off' | 'normal' | 'full' | 'extra';
export type BeginMode = 'deferred' | 'immediate' | 'exclusive';
export type TempStore = 'default' | 'file' | 'memory';

export const JOURNAL_MODES: readonly JournalMode[] = [
  'wal',
  'delete',
  'truncate',
  'persist',
  'memory',
  'off',
];
export const SYNCHRONOUS: readonly Synchronous[] = ['off', 'normal', 'full', 'extra'];
export const BEGIN_MODES: readonly BeginMode[] = ['deferred', 'immediate', 'exclusive'];
export const TEMP_STORES: readonly TempStore[] = ['default', 'file', 'memory'];

export interface SqliteOptions extends DatabaseOptions {
  /** Path of the database file, or `':memory:'`. */
  filename: string;
  /** Default `'wal'` for files (`'memory'` is all an in-memory database can have). */
  journalMode?: JournalMode;
  /**
   * Default `'full'`: with WAL, a committed transaction survives power loss. `'normal'`
   * keeps the database consistent but may lose the latest commits on an OS crash or
   * power loss — an explicit opt-in.
   */
  synchronous?: Synchronous;
  /** Enforce foreign keys. Default true (set and verified at open, outside any transaction). */
  foreignKeys?: boolean;
  /** Total time to keep trying when another connection holds the lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Longest single synchronous wait inside SQLite (blocks the event loop). Default 10 ms. */
  busyWaitMs?: number;
  /** Page cache size in KiB. */
  cacheSizeKiB?: number;
  tempStore?: TempStore;
  /** Bytes of the file to memory-map (0 disables). */
  mmapSize?: number;
  walAutocheckpointPages?: number;
  journalSizeLimit?: number;
  /** Extra read-only connections for read-only transactions and autocommit reads (WAL only). Default 0. */
  readers?: number;
  /** BEGIN mode of read-write transactions. Default `'immediate'` (read-only ones use `'deferred'`). */
  defaultBeginMode?: BeginMode;
  /** Prepared statements cached per connection. Default 128. */
  statementCacheSize?: number;
  /** Reject isolation levels below serializable instead of reporting that serializable is used. */
  strictIsolation?: boolean;
  /** Allow `journalMode: 'off' | 'memory'` on a file and `synchronous: 'off'` (can corrupt on a crash). */
  unsafe?: boolean;
  /** Open the file read-only. */
  readonly?: boolean;
  fileMustExist?: boolean;
  /** How long a caller waits for the writer connection before a diagnostic error. Default 30 000 ms. */
  lockWaitTimeoutMs?: number;
  /** Let BEGIN/COMMIT/SAVEPOINT through query()/execute() (you then own the consequences). */
  allowRawTransactionControl?: boolean;
  /** Return INTEGER columns as bigint. */
  safeIntegers?: boolean;
}

export interface ResolvedSqliteOptions {
  filename: string;
  memory: boolean;
  journalMode: JournalMode;
  synchronous: Synchronous;
  foreignKeys: boolean;
  busyTimeoutMs: number;
  busyWaitMs: number;
  cacheSizeKiB: number | undefined;
  tempStore: TempStore | undefined;
  mmapSize: number | undefined;
  walAutocheckpointPages: number | undefined;
  journalSizeLimit: number | undefined;
  readers: number;
  defaultBeginMode: BeginMode;
  statementCacheSize: number;
  strictIsolation: boolean;
  readonly: boolean;
  fileMustExist: boolean;
  lockWaitTimeoutMs: number;
  allowRawTransactionControl: boolean;
  safeIntegers: boolean;
  database: DatabaseOptions;
}

const oneOf = <T extends string>(name: string, v: unknown, allowed: readonly T[]): T | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !allowed.includes(v.toLowerCase() as T)) {
    throw new InvalidOptionError(
      `${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
  return v.toLowerCase() as T;
};

const int = (name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
  return v;
};

const bool = (name: string, v: unknown): boolean | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean')
    throw new InvalidOptionError(`${name} must be true or false, got ${JSON.stringify(v)}`);
  return v;
};

const KNOWN = new Set([
  'filename',
  'journalMode',
  'synchronous',
  'foreignKeys',
  'busyTimeoutMs',
  'busyWaitMs',
  'cacheSizeKiB',
  'tempStore',
  'mmapSize',
  'walAutocheckpointPages',
  'journalSizeLimit',
  'readers',
  'defaultBeginMode',
  'statementCacheSize',
  'strictIsolation',
  'unsafe',
  'readonly',
  'fileMustExist',
  'lockWaitTimeoutMs',
  'allowRawTransactionControl',
  'safeIntegers',
  'slowThresholdMs',
  'maxNestingDepth',
  'maxSuspendedDepth',
]);

export function resolveSqliteOptions(options: SqliteOptions): ResolvedSqliteOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError("sqlite() needs an options object such as { filename: 'app.db' }");
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key))
      throw new InvalidOptionError(`unknown sqlite option '${key}'; allowed: ${[...KNOWN].join(', ')}`);
  }
  const { filename } = options;
  if (typeof filename !== 'string' || filename.length === 0 || filename.includes('\0')) {
    throw new InvalidOptionError("filename must be a non-empty path or ':memory:'");
  }
  const memory = filename === ':memory:';
  const unsafe = bool('unsafe', options.unsafe) ?? false;
  const journalMode = oneOf('journalMode', options.journalMode, JOURNAL_MODES) ?? (memory ? 'memory' : 'wal');
  const synchronous = oneOf('synchronous', options.synchronous, SYNCHRONOUS) ?? 'full';
  if (!memory && !unsafe && (journalMode === 'off' || journalMode === 'memory')) {
    throw new InvalidOptionError(
      `journalMode '${journalMode}' can corrupt a database file on a crash; use 'wal' or 'delete', or set unsafe: true`,
    );
  }
  if (!memory && !unsafe && synchronous === 'off') {
    throw new InvalidOptionError(
      "synchronous 'off' can corrupt a database file on power loss; use 'normal' or 'full', or set unsafe: true",
    );
  }
  if (memory && journalMode === 'wal') {
    throw new InvalidOptionError("an in-memory database cannot use WAL; omit journalMode or use 'memory'");
  }
  const readers = int('readers', options.readers, 0, 64) ?? 0;
  if (readers > 0 && (memory || journalMode !== 'wal')) {
    throw new InvalidOptionError(
      "readers need a database file in WAL mode: in rollback-journal modes readers block the writer's commits",
    );
  }
  const busyTimeoutMs = int('busyTimeoutMs', options.busyTimeoutMs, 0) ?? 5000;
  const busyWaitMs = int('busyWaitMs', options.busyWaitMs, 0, 1000) ?? 10;
  return {
    filename,
    memory,
    journalMode,
    synchronous,
    foreignKeys: bool('foreignKeys', options.foreignKeys) ?? true,
    busyTimeoutMs,
    busyWaitMs: Math.min(busyWaitMs, busyTimeoutMs),
    cacheSizeKiB: int('cacheSizeKiB', options.cacheSizeKiB, 1),
    tempStore: oneOf('tempStore', options.tempStore, TEMP_STORES),
    mmapSize: int('mmapSize', options.mmapSize, 0),
    walAutocheckpointPages: int('walAutocheckpointPages', options.walAutocheckpointPages, 0),
    journalSizeLimit: int('journalSizeLimit', options.journalSizeLimit, -1),
    readers,
    defaultBeginMode: oneOf('defaultBeginMode', options.defaultBeginMode, BEGIN_MODES) ?? 'immediate',
    statementCacheSize: int('statementCacheSize', options.statementCacheSize, 0, 100_000) ?? 128,
    strictIsolation: bool('strictIsolation', options.strictIsolation) ?? false,
    readonly: bool('readonly', options.readonly) ?? false,
    fileMustExist: bool('fileMustExist', options.fileMustExist) ?? false,
    lockWaitTimeoutMs: int('lockWaitTimeoutMs', options.lockWaitTimeoutMs, 1) ?? 30_000,
    allowRawTransactionControl:
      bool('allowRawTransactionControl', options.allowRawTransactionControl) ?? false,
    safeIntegers: bool('safeIntegers', options.safeIntegers) ?? false,
    database: {
      ...(options.slowThresholdMs !== undefined ? { slowThresholdMs: options.slowThresholdMs } : {}),
      ...(options.maxNestingDepth !== undefined ? { maxNestingDepth: options.maxNestingDepth } : {}),
      ...(options.maxSuspendedDepth !== undefined ? { maxSuspendedDepth: options.maxSuspendedDepth } : {}),
    },
  };
}
