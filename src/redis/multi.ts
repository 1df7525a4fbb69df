/**
 * The MULTI/EXEC builder. Commands are buffered client-side: nothing reaches the server
 * before `exec()`, so reads through other connections see the old values until then, and
 * `discard()` before `exec()` needs no round trip.
 */
import { CommandBuilder, type QueuedCommand } from './commands.js';
import {
  type CommandReply,
  PartialTransactionError,
  TransactionOutcomeUnknownError,
  TransactionStateError,
  WatchConflictError,
} from './errors.js';
import type { ExecOutcome } from './exec-transaction.js';

/** Where a builder is in its life. `unknown`: the connection failed after EXEC was sent. */
export type TxState =
  | 'building'
  | 'executing'
  | 'committed'
  | 'aborted'
  | 'conflict'
  | 'discarded'
  | 'unknown';

/**
 * The outcome of EXEC.
 * - `committed`: every command ran. `replies[i]` belongs to the i-th command; an
 *   `{ok:false}` entry failed at run time **and the others were still applied**.
 * - `conflict`: a watched key changed; nothing was applied.
 *
 * Queue-time rejections throw {@link ExecAbortError} (nothing applied); a lost reply
 * throws {@link TransactionOutcomeUnknownError}.
 */
export type TxResult =
  | { status: 'committed'; replies: CommandReply[]; hasErrors: boolean }
  | { status: 'conflict' };

/** Sends the buffered commands; supplied by `redisTx` (on its shared connection). */
export type TransactionSender = (commands: readonly QueuedCommand[]) => Promise<ExecOutcome>;

/**
 * A single-use transaction: queue commands, then `exec()` or `discard()` exactly once.
 *
 * @example
 * const m = tx.multi();
 * m.decrby('{acct}:alice', 100).incrby('{acct}:bob', 100);
 * const result = await m.exec();
 * if (result.status === 'committed' && result.hasErrors) console.warn('partly applied', result.replies);
 */
export class MultiBuilder extends CommandBuilder {
  #state: TxState = 'building';

  constructor(private readonly send: TransactionSender) {
    super();
  }

  get state(): TxState {
    return this.#state;
  }

  /** Number of queued commands. */
  get length(): number {
    return this.queued.length;
  }

  protected override beforeAdd(): void {
    if (this.#state !== 'building') {
      throw new TransactionStateError(`cannot queue commands: the transaction is ${this.#state}`);
    }
  }

  /** Sends MULTI, the commands and EXEC in one write. */
  exec(): Promise<TxResult> {
    try {
      this.beforeAdd();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#state = 'executing';
    // Plain promise chaining (not async/await): this is the hot path of every MULTI.
    return this.send(this.queued).then(
      (outcome) => {
        this.#state = outcome.status;
        return outcome;
      },
      (err: unknown) => {
        this.#state = err instanceof TransactionOutcomeUnknownError ? 'unknown' : 'aborted';
        throw err;
      },
    );
  }

  /**
   * Like `exec()`, but every command must succeed: throws {@link PartialTransactionError}
   * (whose message says the other commands were applied) or {@link WatchConflictError}.
   */
  async execStrict(): Promise<CommandReply[]> {
    const result = await this.exec();
    if (result.status === 'conflict') throw new WatchConflictError();
    if (result.hasErrors) throw new PartialTransactionError(result.replies);
    return result.replies;
  }

  /** Drops the buffer. Nothing was sent, so the server is not contacted. */
  discard(): void {
    if (this.#state !== 'building') {
      throw new TransactionStateError(`cannot discard: the transaction is ${this.#state}`);
    }
    this.#state = 'discarded';
    this.queued.length = 0;
  }
}
