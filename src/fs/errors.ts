/**
 * Filesystem error classes. Every error is a `TxkitError` with a stable `code`; the
 * Node error (with its errno `code`) stays as `cause`. Classification is by errno only.
 */
import { LockTimeoutError, TxkitError, type TxkitErrorInit } from '../core/errors.js';

/** What the failed call was doing, for the message and for callers. */
export interface FsErrorContext {
  /** The txkit operation, e.g. `atomicWriteFile`, `wal.append`. */
  op: string;
  /** The step that failed, e.g. `fsync temp file`, `rename`. */
  step?: string;
  path?: string;
}

/** Base class of every filesystem error: carries the path, operation and errno. */
export class FsError extends TxkitError {
  readonly path: string | undefined;
  readonly op: string;
  readonly step: string | undefined;
  readonly errno: string | undefined;
  constructor(code: string, message: string, ctx: FsErrorContext, init: TxkitErrorInit = {}) {
    super(code, message, init);
    this.path = ctx.path;
    this.op = ctx.op;
    this.step = ctx.step;
    this.errno = errnoOf(init.cause);
    if (this.errno !== undefined) this.driverCode = this.errno;
  }
}

/** ENOSPC / EDQUOT: the disk (or quota) is full. Nothing partial was made visible. */
export class DiskFullError extends FsError {}
/** EACCES / EPERM / EROFS. txkit never changes permissions to get around it. */
export class FsPermissionError extends FsError {}
/** EXDEV: a rename across filesystems. txkit never falls back to copy + delete. */
export class CrossDeviceError extends FsError {}
/** EIO and fsync failures: fail-stop, the component must be reopened (recovery runs then). */
export class FsIoError extends FsError {}
/** ENOENT / ENOTDIR. */
export class FsNotFoundError extends FsError {}
/** Any other errno. */
export class FsOperationError extends FsError {}

/** The lock was taken over (or broken) while this handle thought it held it. Stop writing. */
export class LockCompromisedError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_LOCK_COMPROMISED', message, init);
  }
}

/** Waiting for a file lock timed out. `holder` says who holds it, when known. */
export class FileLockTimeoutError extends LockTimeoutError {
  readonly holder: unknown;
  constructor(message: string, holder?: unknown) {
    super(message);
    this.holder = holder;
  }
}

/**
 * An exclusive request inside a scope that holds the same lock shared: upgrades are never
 * implicit (two readers upgrading at once would wait on each other forever).
 */
export class LockUpgradeError extends TxkitError {
  constructor(message: string) {
    super('E_LOCK_UPGRADE', message);
  }
}

/** A request for a lock its own scope already holds, without `reentrant: true`: it could only wait on itself. */
export class LockReentryError extends TxkitError {
  constructor(message: string) {
    super('E_LOCK_REENTRY', message);
  }
}

export function errnoOf(err: unknown): string | undefined {
  if (err !== null && typeof err === 'object' && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

const CLASS_BY_ERRNO: Record<
  string,
  [new (...a: ConstructorParameters<typeof FsError>) => FsError, string, string]
> = {
  ENOSPC: [DiskFullError, 'E_FS_DISK_FULL', 'no space left on device'],
  EDQUOT: [DiskFullError, 'E_FS_DISK_FULL', 'disk quota exceeded'],
  EACCES: [FsPermissionError, 'E_FS_PERMISSION', 'permission denied'],
  EPERM: [FsPermissionError, 'E_FS_PERMISSION', 'operation not permitted'],
  EROFS: [FsPermissionError, 'E_FS_PERMISSION', 'read-only filesystem'],
  EXDEV: [CrossDeviceError, 'E_FS_CROSS_DEVICE', 'rename across filesystems (txkit never copies instead)'],
  EIO: [FsIoError, 'E_FS_IO', 'I/O error'],
  EUCLEAN: [FsIoError, 'E_FS_IO', 'filesystem corruption reported'],
  ENOENT: [FsNotFoundError, 'E_FS_NOT_FOUND', 'no such file or directory'],
  ENOTDIR: [FsNotFoundError, 'E_FS_NOT_FOUND', 'a path component is not a directory'],
};

/**
 * Maps a Node fs error to the txkit class for its errno. An already-classified error is
 * returned unchanged. `fsyncFailed` marks errors from fsync: always {@link FsIoError}.
 */
export function classifyFsError(err: unknown, ctx: FsErrorContext, fsyncFailed = false): TxkitError {
  if (err instanceof TxkitError) return err;
  const errno = errnoOf(err);
  const where = `${ctx.op}: ${ctx.step ? `${ctx.step} ` : ''}${ctx.path ? `of ${ctx.path} ` : ''}failed`;
  if (fsyncFailed && errno !== 'ENOSPC') {
    return new FsIoError(
      'E_FS_IO',
      `${where}: fsync error (${errno ?? 'unknown'}); not retried, the data may be lost`,
      ctx,
      {
        cause: err,
      },
    );
  }
  const entry = errno ? CLASS_BY_ERRNO[errno] : undefined;
  if (entry) {
    const [Cls, code, text] = entry;
    return new Cls(code, `${where}: ${text} (${errno})`, ctx, { cause: err });
  }
  const retryable = errno === 'EBUSY' || errno === 'EAGAIN' || errno === 'EMFILE' || errno === 'ENFILE';
  const msg = err instanceof Error ? err.message : String(err);
  return new FsOperationError('E_FS', `${where}: ${errno ?? msg}`, ctx, { cause: err, retryable });
}
