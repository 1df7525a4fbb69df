/** File-transaction errors. */
import { TxkitError, type TxkitErrorInit } from '../../core/errors.js';

/** The path is reserved by a prepared (in-doubt) transaction; retry after it is resolved. */
export class FsTxConflictError extends TxkitError {
  readonly path: string;
  readonly gid: string;
  constructor(path: string, gid: string) {
    super(
      'E_FSTX_CONFLICT',
      `fsTransaction: ${path} belongs to prepared transaction ${gid}; commit or roll it back first`,
      {
        retryable: true,
      },
    );
    this.path = path;
    this.gid = gid;
  }
}

/** A file operation inside a transaction was refused (exists, missing, not a file). */
export class FsTxOperationError extends TxkitError {
  readonly path: string;
  constructor(
    code: 'E_FS_EXISTS' | 'E_FS_NOT_FOUND' | 'E_FS_NOT_A_FILE',
    message: string,
    path: string,
    init?: TxkitErrorInit,
  ) {
    super(code, message, init);
    this.path = path;
  }
}

/** A committed transaction could not be finished; it stays journaled and recovery retries it. */
export class FsTxRecoveryError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_FSTX_RECOVERY', message, init);
  }
}
