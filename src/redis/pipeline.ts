/**
 * Pipelines: many commands per round trip, **not atomic** (other clients' commands can
 * interleave, and a failed command does not stop later ones). Commands go out in batches
 * (default 500) on txkit's resend-free connection, and every command gets its own result:
 *
 * - `applied`: the server ran it and returned `value`;
 * - `failed`: the server refused or failed it (`error`), the others are unaffected;
 * - `unknown`: the connection failed after its batch was written: it may have run;
 * - `not-attempted`: never sent, because an earlier batch ended in `unknown`.
 *
 * A batch whose connection failed is re-sent only when every command in it is idempotent
 * (the built-in list, or the caller's `idempotent` predicate); a batch holding INCR, LPUSH
 * or any other non-idempotent command is reported `unknown`, never re-sent blindly.
 */
import type { TxkitError } from '../core/errors.js';
import { InvalidOptionError } from '../core/errors.js';
import {
  appendCommands,
  CommandBuilder,
  decodeReply,
  keysOf,
  makeCommand,
  type QueuedCommand,
} from './commands.js';
import { canWrite, type RedisClient, whenReady } from './connection.js';
import type { RedisContext } from './context.js';
import {
  type CrossSlotError,
  isReplyError,
  RedisReplyError,
  TransactionOutcomeUnknownError,
} from './errors.js';
import { commonSlot } from './key-slot.js';

export type PipelineReply<T = unknown> =
  | { ok: true; status: 'applied'; value: T }
  | { ok: false; status: 'failed'; error: TxkitError }
  | { ok: false; status: 'unknown'; error: TransactionOutcomeUnknownError }
  | { ok: false; status: 'not-attempted' };

export interface PipelineResult {
  /** One entry per command, in input order. */
  replies: PipelineReply[];
  applied: number;
  failed: number;
  unknown: number;
  notAttempted: number;
}

export interface PipelineOptions {
  /** Commands per round trip: 1–10 000, default 500 (100–1000 recommended). */
  batchSize?: number;
  /** Declares more commands idempotent (safe to re-send after a connection failure). */
  idempotent?: (cmd: QueuedCommand) => boolean;
  /** Called after each batch, e.g. for progress reporting. */
  onBatch?: (info: { done: number; batchSize: number; failed: number }) => void;
  /** How long to wait for the connection before a batch. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

/** A command given as `[name, ...args]`. */
export type CommandTuple = [string, ...Array<string | number | Buffer>];

export const DEFAULT_BATCH_SIZE = 500;
export const MAX_BATCH_SIZE = 10_000;

/** Commands whose second run leaves the same state as the first (reads, overwrites, deletes). */
const IDEMPOTENT = new Set([
  'get',
  'mget',
  'exists',
  'hget',
  'hmget',
  'hgetall',
  'smembers',
  'sismember',
  'lrange',
  'llen',
  'zrange',
  'zscore',
  'zcard',
  'ttl',
  'pttl',
  'type',
  'strlen',
  'scard',
  'hlen',
  'set',
  'mset',
  'del',
  'unlink',
  'expire',
  'pexpire',
  'expireat',
  'pexpireat',
  'persist',
  'hset',
  'hdel',
  'ping',
]);

function isIdempotent(cmd: QueuedCommand, extra?: (cmd: QueuedCommand) => boolean): boolean {
  if (cmd.script) return extra?.(cmd) ?? false;
  // SET with GET returns the previous value: re-running changes the reply, not the state. Still safe.
  return IDEMPOTENT.has(cmd.name) || (extra?.(cmd) ?? false);
}

function buildCommands(build: (p: CommandBuilder) => void): QueuedCommand[] {
  const builder = new CommandBuilder();
  build(builder);
  return builder.queued;
}

/** Collects the commands of a pipeline from a builder function or an (async) iterable of tuples. */
export async function* commandSource(
  source: ((p: CommandBuilder) => void) | Iterable<CommandTuple> | AsyncIterable<CommandTuple>,
): AsyncGenerator<QueuedCommand> {
  if (typeof source === 'function') {
    const builder = new CommandBuilder();
    source(builder);
    yield* builder.queued;
    return;
  }
  for await (const tuple of source as AsyncIterable<CommandTuple>) {
    const [name, ...args] = tuple;
    yield makeCommand(name, args);
  }
}

/** Sends one batch on one connection: one ioredis pipeline. */
async function sendBatch(conn: RedisClient, batch: readonly QueuedCommand[]): Promise<PipelineReply[]> {
  const pipeline = conn.pipeline();
  appendCommands(pipeline, batch);
  // Checked in the same tick as the write: if it fails, nothing was sent.
  if (!canWrite(conn)) return batch.map(() => ({ ok: false, status: 'not-attempted' }));
  let raw: Array<[Error | null, unknown]> | null;
  try {
    raw = await pipeline.exec();
  } catch (err) {
    raw = batch.map(() => [err instanceof Error ? err : new Error(String(err)), undefined]);
  }
  return batch.map((cmd, i): PipelineReply => {
    const [err, value] = raw?.[i] ?? [new Error('no reply'), undefined];
    if (!err) {
      try {
        return { ok: true, status: 'applied', value: decodeReply(cmd, value) };
      } catch (decodeErr) {
        return { ok: false, status: 'failed', error: new RedisReplyError(decodeErr as Error) };
      }
    }
    if (isReplyError(err)) return { ok: false, status: 'failed', error: new RedisReplyError(err) };
    return {
      ok: false,
      status: 'unknown',
      error: new TransactionOutcomeUnknownError(
        `the connection failed after '${cmd.name}' was sent: it may or may not have run`,
        { cause: err },
      ),
    };
  });
}

/** Cluster: one pipeline per slot, sent concurrently; cross-slot commands fail without being sent. */
async function sendClusterBatch(
  conn: RedisClient,
  batch: readonly QueuedCommand[],
): Promise<PipelineReply[]> {
  const out: PipelineReply[] = new Array(batch.length);
  const groups = new Map<number, number[]>();
  batch.forEach((cmd, i) => {
    let slot: number;
    try {
      slot = commonSlot(keysOf(cmd)) ?? -1;
    } catch (err) {
      out[i] = { ok: false, status: 'failed', error: err as CrossSlotError };
      return;
    }
    let list = groups.get(slot);
    if (!list) {
      list = [];
      groups.set(slot, list);
    }
    list.push(i);
  });
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const replies = await sendBatch(
        conn,
        indexes.map((i) => batch[i]!),
      );
      indexes.forEach((i, j) => {
        out[i] = replies[j]!;
      });
    }),
  );
  return out;
}

function checkBatchSize(size: unknown): number {
  if (size === undefined) return DEFAULT_BATCH_SIZE;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_BATCH_SIZE) {
    throw new InvalidOptionError(
      `batchSize must be an integer from 1 to ${MAX_BATCH_SIZE} (100–1000 recommended), got ${String(size)}`,
    );
  }
  return size;
}

/** Runs a pipeline in batches. See `redisTx(...).pipeline`. */
export async function runPipeline(
  ctx: RedisContext,
  source: ((p: CommandBuilder) => void) | Iterable<CommandTuple> | AsyncIterable<CommandTuple>,
  options: PipelineOptions = {},
): Promise<PipelineResult> {
  const batchSize = checkBatchSize(options.batchSize);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const result: PipelineResult = { replies: [], applied: 0, failed: 0, unknown: 0, notAttempted: 0 };
  let stopped = false;
  let batch: QueuedCommand[] = [];

  const flush = async () => {
    if (batch.length === 0) return;
    const commands = batch;
    batch = [];
    let replies: PipelineReply[];
    if (stopped) {
      replies = commands.map(() => ({ ok: false, status: 'not-attempted' }));
    } else {
      const send = async (): Promise<PipelineReply[]> => {
        let conn: RedisClient;
        try {
          conn = await ctx.shared();
        } catch {
          return commands.map(() => ({ ok: false, status: 'not-attempted' }));
        }
        return ctx.isCluster ? sendClusterBatch(conn, commands) : sendBatch(conn, commands);
      };
      replies = await send();
      if (replies.some((r) => r.status === 'unknown')) {
        if (commands.every((c) => isIdempotent(c, options.idempotent))) {
          // Safe to run again: each command leaves the same state however often it runs.
          await whenReady(await ctx.shared(), timeoutMs).catch(() => {});
          replies = await send().catch(() => replies);
        }
      }
      if (replies.some((r) => r.status === 'unknown' || r.status === 'not-attempted')) stopped = true;
    }
    let failed = 0;
    let unknown = 0;
    let notAttempted = 0;
    for (const r of replies) {
      result.replies.push(r);
      if (r.status === 'applied') result.applied++;
      else if (r.status === 'failed') failed++;
      else if (r.status === 'unknown') unknown++;
      else notAttempted++;
    }
    result.failed += failed;
    result.unknown += unknown;
    result.notAttempted += notAttempted;
    ctx.metrics.observe('redis_pipeline_batch_size', commands.length);
    ctx.metrics.inc(
      'redis_pipeline_commands_total',
      { result: 'applied' },
      commands.length - failed - unknown - notAttempted,
    );
    if (failed) ctx.metrics.inc('redis_pipeline_commands_total', { result: 'failed' }, failed);
    if (unknown) ctx.metrics.inc('redis_pipeline_commands_total', { result: 'unknown' }, unknown);
    if (notAttempted)
      ctx.metrics.inc('redis_pipeline_commands_total', { result: 'not-attempted' }, notAttempted);
    if (ctx.events.wants('pipeline-batch')) {
      ctx.events.emit('pipeline-batch', { size: commands.length, failed, unknown, notAttempted });
    }
    options.onBatch?.({ done: result.replies.length, batchSize: commands.length, failed: failed + unknown });
  };

  if (typeof source === 'function' || Array.isArray(source)) {
    // In-memory input: no per-command await.
    const all =
      typeof source === 'function' ? buildCommands(source) : source.map(([n, ...a]) => makeCommand(n, a));
    for (let i = 0; i < all.length; i += batchSize) {
      batch = all.slice(i, i + batchSize);
      await flush();
    }
  } else {
    for await (const cmd of commandSource(source)) {
      batch.push(cmd);
      if (batch.length >= batchSize) await flush();
    }
  }
  await flush();
  return result;
}
