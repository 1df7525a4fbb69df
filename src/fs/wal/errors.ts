/** WAL errors. */
import { TxkitError, type TxkitErrorInit } from '../../core/errors.js';

/** Invalid data where it cannot be a torn tail (a sealed segment, an LSN gap). Never skipped. */
export class WalCorruptionError extends TxkitError {
  readonly segment: string;
  readonly offset: number;
  readonly lsn: bigint;
  constructor(
    message: string,
    where: { segment: string; offset: number; lsn: bigint },
    init: TxkitErrorInit = {},
  ) {
    super('E_WAL_CORRUPT', message, init);
    this.segment = where.segment;
    this.offset = where.offset;
    this.lsn = where.lsn;
  }
}

/** The WAL stopped (fail-stop) after an fsync or truncate error. Reopen it: recovery runs. */
export class WalFailedError extends TxkitError {
  constructor(message: string, init: TxkitErrorInit = {}) {
    super('E_WAL_FAILED', message, init);
  }
}

/** Another process (or another `openWal` in this one) has the WAL open for writing. */
export class WalLockedError extends TxkitError {
  readonly holder: unknown;
  constructor(message: string, holder?: unknown) {
    super('E_WAL_LOCKED', message);
    this.holder = holder;
  }
}

export class WalClosedError extends TxkitError {
  constructor(message: string) {
    super('E_WAL_CLOSED', message);
  }
}

/** `append(..., { nonBlocking: true })` while more than `maxPendingBytes` wait for fsync. */
export class WalBackpressureError extends TxkitError {
  constructor(message: string) {
    super('E_WAL_BACKPRESSURE', message, { retryable: true });
  }
}
