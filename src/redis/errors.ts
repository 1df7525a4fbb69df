/**
 * Redis-specific errors. Each is a {@link TxkitError} with a stable code. Redis reply
 * errors are classified by their leading code word (`WRONGTYPE`, `EXECABORT`,
 * `NOSCRIPT`, …), which is Redis's error code, never by the rest of the message.
 */
import {
  CommitOutcomeUnknownError,
  TransactionClosedError,
  TxkitError,
  type TxkitErrorInit,
} from '../core/errors.js';

/** The leading upper-case word of a Redis error reply (`WRONGTYPE`, `ERR`, `NOSCRIPT`, …). */
export function replyCode(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.name !== 'ReplyError') return undefined;
  const word = /^[A-Z][A-Z_-]*/.exec(err.message);
  return word ? word[0] : undefined;
}

/** True for an error reply sent by the server (as opposed to a client or transport failure). */
export function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

/** Transient server states in which re-running the whole unit is safe (nothing was applied). */
const TRANSIENT = new Set(['BUSY', 'LOADING', 'MASTERDOWN', 'TRYAGAIN', 'CLUSTERDOWN']);

/**
 * One command's error reply. `driverCode` is Redis's code word (e.g. `WRONGTYPE`).
 * Inside EXEC it means that command failed and **the other commands were applied**.
 */
export class RedisReplyError extends TxkitError {
  constructor(cause: Error, init: TxkitErrorInit = {}) {
    const code = replyCode(cause) ?? 'ERR';
    super('E_REDIS_REPLY', cause.message, {
      retryable: TRANSIENT.has(code),
      driverCode: code,
      ...init,
      cause,
    });
  }
}

/** One queue-time error behind an EXECABORT, with the index of the command that caused it. */
export interface QueuedCommandError {
  /** Index of the command in the transaction (0 = first command after MULTI). */
  index: number;
  command: string;
  error: RedisReplyError;
}

/**
 * EXEC answered `EXECABORT`: a command was rejected while queueing (unknown command,
 * wrong arity, ACL NOPERM, OOM, …). **Nothing was applied.**
 */
export class ExecAbortError extends TxkitError {
  readonly previousErrors: QueuedCommandError[];
  constructor(previousErrors: QueuedCommandError[], cause: unknown) {
    const list = previousErrors.map((e) => `#${e.index} ${e.command}: ${e.error.message}`).join('; ');
    super('E_REDIS_EXECABORT', `transaction rejected at queue time, nothing was applied (${list})`, {
      cause,
      driverCode: 'EXECABORT',
      retryable: false,
    });
    this.previousErrors = previousErrors;
  }
}

/** A watched key changed between WATCH and EXEC: EXEC returned nil and nothing was applied. */
export class WatchConflictError extends TxkitError {
  constructor(message = 'a watched key changed before EXEC: nothing was applied') {
    super('E_REDIS_WATCH_CONFLICT', message, { retryable: true });
  }
}

/**
 * The connection failed after EXEC (or EVAL) was written: the transaction may or may not
 * have run. txkit never re-sends it; only an idempotency key makes a replay safe.
 */
export class TransactionOutcomeUnknownError extends CommitOutcomeUnknownError {}

/**
 * Thrown by `execStrict()` when EXEC ran but some commands failed. The other commands
 * **were applied**: Redis has no rollback.
 */
export class PartialTransactionError extends TxkitError {
  readonly replies: readonly CommandReply[];
  constructor(replies: readonly CommandReply[]) {
    const failed = replies.flatMap((r, i) => (r.ok ? [] : [`#${i}: ${r.error.message}`]));
    super(
      'E_REDIS_PARTIAL',
      `EXEC ran; ${failed.length} command(s) failed and the other ${replies.length - failed.length} were applied ` +
        `(Redis never rolls back): ${failed.join('; ')}`,
      { retryable: false },
    );
    this.replies = replies;
  }
}

/** Keys of one transaction, script or multi-key command hash to different cluster slots. */
export class CrossSlotError extends TxkitError {
  readonly slots: ReadonlyMap<number, readonly string[]>;
  constructor(slots: ReadonlyMap<number, readonly string[]>) {
    const parts = [...slots].map(([slot, keys]) => `slot ${slot}: ${keys.slice(0, 3).join(', ')}`);
    super(
      'E_REDIS_CROSSSLOT',
      `keys hash to ${slots.size} cluster slots (${parts.join('; ')}); nothing was sent. ` +
        'Give them a common hash tag, e.g. {user42}:cart and {user42}:orders',
      { retryable: false, driverCode: 'CROSSSLOT' },
    );
    this.slots = slots;
  }
}

/** A Lua script failed: `driverCode` is the code word of its `redis.error_reply`. Earlier writes persist. */
export class ScriptError extends TxkitError {
  readonly script: string;
  constructor(script: string, cause: Error) {
    super('E_REDIS_SCRIPT', `script '${script}' failed: ${cause.message}`, {
      cause,
      driverCode: replyCode(cause) ?? 'ERR',
      retryable: false,
    });
    this.script = script;
  }
}

/** The builder was already executed or discarded. */
export class TransactionStateError extends TransactionClosedError {}

/** One command's outcome: a value, or the error reply for that command alone. */
export type CommandReply<T = unknown> = { ok: true; value: T } | { ok: false; error: RedisReplyError };
