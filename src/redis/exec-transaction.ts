/**
 * Sends one buffered transaction (`MULTI`, the commands, `EXEC`) as a single write and
 * turns the reply into one of four outcomes:
 *
 * - committed: EXEC ran every command; some may have failed at run time, **the others
 *   were applied** (Redis never rolls back);
 * - conflict: a watched key changed, EXEC returned nil, nothing was applied;
 * - rejected at queue time: {@link ExecAbortError}, nothing was applied;
 * - unknown: the connection failed after the batch was written:
 *   {@link TransactionOutcomeUnknownError}; txkit never re-sends it.
 */
import { ConnectionLostError } from '../core/errors.js';
import { appendCommands, decodeReply, type QueuedCommand } from './commands.js';
import type { RedisClient } from './connection.js';
import {
  type CommandReply,
  ExecAbortError,
  isReplyError,
  type QueuedCommandError,
  RedisReplyError,
  replyCode,
  TransactionOutcomeUnknownError,
} from './errors.js';

export type ExecOutcome =
  | { status: 'committed'; replies: CommandReply[]; hasErrors: boolean }
  | { status: 'conflict' };

/** Builds a per-command reply list from EXEC's array (errors stay in their slots). */
function toReplies(commands: readonly QueuedCommand[], raw: readonly unknown[]): CommandReply[] {
  const out: CommandReply[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const value = raw[i];
    const cmd = commands[i]!;
    if (value instanceof Error) out[i] = { ok: false, error: new RedisReplyError(value) };
    else if (!cmd.script?.decode) out[i] = { ok: true, value };
    else out[i] = decodeOne(cmd, value);
  }
  return out;
}

function decodeOne(cmd: QueuedCommand, value: unknown): CommandReply {
  try {
    return { ok: true, value: decodeReply(cmd, value) };
  } catch (err) {
    return { ok: false, error: new RedisReplyError(err instanceof Error ? err : new Error(String(err))) };
  }
}

/**
 * Runs MULTI/EXEC for `commands` on `conn`, which must be ready. The caller has already
 * checked anything that must hold before sending (slots, watch epoch).
 */
export async function execTransaction(
  conn: RedisClient,
  commands: readonly QueuedCommand[],
): Promise<ExecOutcome> {
  if (conn.status !== 'ready') {
    throw new ConnectionLostError(`connection is ${conn.status}; the transaction was not sent`, {
      retryable: true,
    });
  }
  const pipeline = conn.pipeline();
  (pipeline as unknown as { multi(): void }).multi();
  appendCommands(pipeline, commands);
  // Inside a pipeline, exec() after multi() queues EXEC; the second exec() sends the batch.
  (pipeline as unknown as { exec(): void }).exec();
  let raw: Array<[Error | null, unknown]> | null;
  try {
    raw = await pipeline.exec();
  } catch (err) {
    throw new TransactionOutcomeUnknownError(
      'the transaction was sent but no reply arrived: it may or may not have been applied',
      { cause: err },
    );
  }
  if (!raw || raw.length !== commands.length + 2) {
    throw new TransactionOutcomeUnknownError(
      `unexpected reply shape for EXEC (${raw?.length ?? 'null'} entries)`,
    );
  }
  const [execErr, execReply] = raw[raw.length - 1]!;
  if (execErr) {
    if (replyCode(execErr) === 'EXECABORT') {
      const previous: QueuedCommandError[] = [];
      for (let i = 1; i < raw.length - 1; i++) {
        const err = raw[i]![0];
        if (err)
          previous.push({ index: i - 1, command: commands[i - 1]!.name, error: new RedisReplyError(err) });
      }
      throw new ExecAbortError(previous, execErr);
    }
    if (isReplyError(execErr)) {
      // MULTI itself was refused (e.g. MOVED, CROSSSLOT, NOPERM): nothing was queued or run.
      const multiErr = raw[0]![0];
      throw new RedisReplyError(isReplyError(multiErr) ? multiErr : execErr);
    }
    throw new TransactionOutcomeUnknownError(
      'the connection failed after EXEC was sent: the transaction may or may not have been applied',
      { cause: execErr },
    );
  }
  if (execReply === null) return { status: 'conflict' };
  if (!Array.isArray(execReply)) {
    throw new TransactionOutcomeUnknownError(`EXEC returned a ${typeof execReply}, expected an array`);
  }
  const replies = toReplies(commands, execReply);
  return { status: 'committed', replies, hasErrors: replies.some((r) => !r.ok) };
}
