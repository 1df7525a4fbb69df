/**
 * One optimistic round on a leased connection: WATCH the keys, run the bodies of one or
 * more attempts in order, then send every command they returned in one MULTI/EXEC.
 *
 * Several attempts on the same keys can share a round (see `OptimisticLane`): each body
 * reads what the earlier bodies will have written (through a {@link WriteOverlay}), so the
 * round is equivalent to running the attempts one after another, and one WATCH guards all
 * of them against every other writer. A decision that read such an uncommitted value — an
 * abort or an error as much as a write — only stands if the round's EXEC commits.
 */
import type { Redis } from 'ioredis';
import {
  ConnectionLostError,
  copyError,
  InvalidArgumentError,
  TransactionCancelledError,
} from '../core/errors.js';
import { CommandBuilder, keysOf, type QueuedCommand, type RedisArg } from './commands.js';
import { canWrite, epochOf } from './connection.js';
import type { RedisContext } from './context.js';
import {
  type CommandReply,
  ExecAbortError,
  isReplyError,
  RedisReplyError,
  TransactionOutcomeUnknownError,
  WatchConflictError,
} from './errors.js';
import { execTransaction } from './exec-transaction.js';
import { commonSlot } from './key-slot.js';
import { WatchedReader } from './watched-reader.js';
import { keyId, WriteOverlay } from './write-overlay.js';

/** What the body returns to write: a function that queues the commands. */
export type Ops = (m: CommandBuilder) => void;

const ABORT = Symbol('txkit.redis.abort');

/** Returned by a body that decides not to write (e.g. a condition is false). */
export interface Abort<T> {
  readonly [ABORT]: true;
  readonly reason: string;
  readonly value: T | undefined;
}

/**
 * Ends an optimistic attempt without writing: the runner sends UNWATCH and returns
 * `{status: 'aborted', reason, value}`.
 */
export function abort<T = undefined>(reason: string, value?: T): Abort<T> {
  return { [ABORT]: true, reason, value };
}

function isAbort(v: unknown): v is Abort<unknown> {
  return typeof v === 'object' && v !== null && ABORT in v;
}

export type Body<T> = (read: WatchedReader) => Promise<Ops | Abort<T>> | Ops | Abort<T>;

/** What one attempt ends with, unless it throws. */
export type AttemptOutcome<T> =
  | { status: 'committed'; replies: CommandReply[]; hasErrors: boolean; attempts: number }
  | { status: 'aborted'; reason: string; value: T | undefined; attempts: number };

/** One attempt waiting for a round. */
export interface AttemptRequest<T> {
  readonly body: Body<T>;
  /** Which attempt this is (1 for the first). */
  readonly attempt: number;
  readonly signal: AbortSignal | undefined;
  resolve(outcome: AttemptOutcome<T>): void;
  reject(err: unknown): void;
}

export class VoidedAttemptError extends ConnectionLostError {
  constructor(why: string, cause?: unknown) {
    super(`attempt voided: ${why}; the WATCH no longer guards this connection, nothing was sent`, {
      retryable: true,
      cause,
    });
  }
}

/** Rejects an attempt whose signal fired before its body ran (nothing of it was sent). */
export const cancelledBeforeRun = (signal: AbortSignal) =>
  new TransactionCancelledError('cancelled before the attempt ran', { cause: signal.reason });

/** A WATCH already written on a connection, with GETs read ahead right behind it. */
export interface SentWatch {
  readonly epoch: number;
  /** Resolves to undefined, or to the error WATCH got. */
  readonly watched: Promise<unknown>;
  /** GET replies for keys read ahead, by key id: guarded reads, since they follow WATCH. */
  readonly readAhead: ReadonlyMap<string, Promise<unknown>>;
}

/** Writes `WATCH keys` on `conn`, then a GET for each of `readAhead`. */
export function sendWatch(
  conn: Redis,
  keys: readonly RedisArg[],
  readAhead: readonly RedisArg[] = [],
): SentWatch {
  const epoch = epochOf(conn);
  const watched = conn.call('watch', ...keys).then(
    () => undefined,
    (err: unknown) => err,
  );
  const ahead = new Map<string, Promise<unknown>>();
  for (const key of readAhead) {
    const reply = conn.call('get', key);
    reply.catch(ignore); // a read ahead no body uses must not become an unhandled rejection
    ahead.set(keyId(key), reply);
  }
  return { epoch, watched, readAhead: ahead };
}

const ignore = () => {};

export interface RoundHooks {
  /** The WATCH the previous round sent behind its EXEC; sent by the round when absent. */
  watch?: SentWatch;
  /**
   * Called once EXEC is on the wire, with what the round wrote: a next round may WATCH on
   * the same connection from then on, since its commands run after this EXEC.
   */
  onWritten?: (written: WriteOverlay) => void;
}

/** An attempt whose body ran in this round. */
interface Member<T> {
  readonly req: AttemptRequest<T>;
  /** It read a value an earlier body of the round has not committed yet. */
  readonly speculative: boolean;
  commands?: readonly QueuedCommand[];
  abort?: Abort<T>;
  error?: unknown;
  settled: boolean;
}

/**
 * Runs `batch` as one round on `conn` (leased, holding no WATCH but `hooks.watch`). Every
 * request is settled or handed to `requeue` (for the next round, in order). Resolves true
 * when the connection is clean again (no WATCH, no pending reply), false when it must be
 * destroyed.
 */
export async function runRound<T>(
  ctx: RedisContext,
  conn: Redis,
  keys: readonly RedisArg[],
  batch: readonly AttemptRequest<T>[],
  requeue: (requests: AttemptRequest<T>[]) => void,
  hooks: RoundHooks = {},
): Promise<boolean> {
  const members: Member<T>[] = [];
  const settle = (m: Member<T>, fn: () => void) => {
    if (m.settled) return;
    m.settled = true;
    fn();
  };
  const failAll = (err: () => unknown) => {
    for (const m of members) settle(m, () => m.req.reject(err()));
  };
  try {
    // WATCH is pipelined with the first body's reads: same connection, so it runs first.
    const { epoch, watched, readAhead } = hooks.watch ?? sendWatch(conn, keys);
    const overlay = new WriteOverlay();
    for (let i = 0; i < batch.length; i++) {
      const req = batch[i]!;
      if (req.signal?.aborted) {
        req.reject(cancelledBeforeRun(req.signal));
        continue;
      }
      const reader = new WatchedReader(conn, req.attempt, overlay, readAhead);
      const member: Member<T> = await decide(ctx, keys, req, reader, overlay);
      if (reader.lostConnection) {
        await watched;
        const voided = () => new VoidedAttemptError('the connection failed during reads');
        members.push(member);
        failAll(voided);
        for (const rest of batch.slice(i + 1)) rest.reject(voided());
        return false;
      }
      if (reader.deferred) {
        requeue(batch.slice(i));
        break;
      }
      members.push(member);
      // A decision made on committed values alone stands whatever the round's outcome.
      if (!member.commands && !member.speculative) settleDecision(member);
    }
    const watchErr = await watched;
    if (watchErr) {
      failAll(() =>
        isReplyError(watchErr)
          ? new RedisReplyError(watchErr)
          : new VoidedAttemptError('WATCH got no reply', watchErr),
      );
      return false;
    }
    const writers = members.filter((m) => m.commands);
    if (writers.length === 0) {
      await conn.unwatch();
      for (const m of members) settleDecision(m);
      return true;
    }
    if (epochOf(conn) !== epoch || !canWrite(conn)) {
      failAll(() => new VoidedAttemptError('the connection closed between WATCH and EXEC'));
      return false;
    }
    const commands = writers.flatMap((m) => m.commands!);
    let outcome: Awaited<ReturnType<typeof execTransaction>>;
    try {
      const sent = execTransaction(conn, commands); // writes synchronously, then awaits the reply
      hooks.onWritten?.(overlay);
      outcome = await sent;
    } catch (err) {
      if (err instanceof ExecAbortError) {
        blameQueueErrors(err, writers, members, requeue, settle);
        return true;
      }
      // Sent but unanswered: the writers' outcome is unknown; speculative decisions are void.
      const unknown = err instanceof TransactionOutcomeUnknownError;
      for (const m of members) {
        settle(m, () =>
          m.req.reject(
            m.commands || !unknown
              ? copyError(err)
              : new VoidedAttemptError('the round it read from has an unknown outcome', err),
          ),
        );
      }
      return false;
    }
    if (outcome.status === 'conflict') {
      failAll(() => new WatchConflictError());
      return true;
    }
    let offset = 0;
    for (const m of members) {
      if (!m.commands) {
        settleDecision(m);
        continue;
      }
      const end = offset + m.commands.length;
      const replies = outcome.replies.slice(offset, end);
      let hasErrors = false;
      for (let r = offset; r < end; r++) if (!outcome.replies[r]!.ok) hasErrors = true;
      offset = end;
      settle(m, () => m.req.resolve({ status: 'committed', replies, hasErrors, attempts: m.req.attempt }));
    }
    return true;
  } catch (err) {
    failAll(() => copyError(err));
    return false;
  }

  function settleDecision(m: Member<T>): void {
    settle(m, () => {
      if (m.abort) {
        const { reason, value } = m.abort;
        m.req.resolve({ status: 'aborted', reason, value: value as T, attempts: m.req.attempt });
      } else m.req.reject(m.error);
    });
  }
}

/** Runs one body and records its decision: commands to queue, an abort, or an error. */
async function decide<T>(
  ctx: RedisContext,
  keys: readonly RedisArg[],
  req: AttemptRequest<T>,
  reader: WatchedReader,
  overlay: WriteOverlay,
): Promise<Member<T>> {
  let decision: Ops | Abort<T>;
  try {
    decision = await req.body(reader);
  } catch (err) {
    return { req, speculative: reader.readUncommitted, error: err, settled: false };
  } finally {
    reader.close();
  }
  const member: Member<T> = { req, speculative: reader.readUncommitted, settled: false };
  if (isAbort(decision)) member.abort = decision as Abort<T>;
  else if (typeof decision !== 'function') {
    member.error = new InvalidArgumentError(
      'the optimistic body must return a function queueing commands, or abort(reason)',
    );
  } else {
    try {
      const builder = new CommandBuilder();
      decision(builder);
      if (ctx.isCluster) commonSlot([...keys, ...builder.queued.flatMap(keysOf)]);
      member.commands = builder.queued;
      overlay.apply(builder.queued);
    } catch (err) {
      member.error = err;
    }
  }
  return member;
}

/**
 * EXECABORT: nothing ran. The attempts whose commands were refused get the error (with
 * their own command indexes); the others run again in the next round.
 */
function blameQueueErrors<T>(
  err: ExecAbortError,
  writers: readonly Member<T>[],
  members: readonly Member<T>[],
  requeue: (requests: AttemptRequest<T>[]) => void,
  settle: (m: Member<T>, fn: () => void) => void,
): void {
  let offset = 0;
  const culprits = new Map<Member<T>, ExecAbortError['previousErrors']>();
  for (const m of writers) {
    const end = offset + m.commands!.length;
    const own = err.previousErrors
      .filter((e) => e.index >= offset && e.index < end)
      .map((e) => ({ ...e, index: e.index - offset }));
    if (own.length > 0) culprits.set(m, own);
    offset = end;
  }
  if (culprits.size === 0) {
    for (const m of members) settle(m, () => m.req.reject(copyError(err)));
    return;
  }
  const again: AttemptRequest<T>[] = [];
  for (const m of members) {
    const own = culprits.get(m);
    if (own) settle(m, () => m.req.reject(new ExecAbortError(own, err.cause)));
    else if (!m.settled) {
      m.settled = true;
      again.push(m.req);
    }
  }
  requeue(again);
}
