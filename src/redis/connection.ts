/**
 * Connections txkit owns. They never re-send a command after a reconnect
 * (`autoResendUnfulfilledCommands: false`), never queue commands while offline
 * (`enableOfflineQueue: false`) and reject in-flight commands as soon as the socket closes
 * (`maxRetriesPerRequest: 0`). So a command either reaches the server once, or txkit
 * knows it may not have, and says so.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConnectionLostError } from '../core/errors.js';

export type RedisClient = Redis | Cluster;

/** Options that make a connection safe for non-idempotent transactional writes. */
export const NO_RESEND: Readonly<Partial<RedisOptions>> = Object.freeze({
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  lazyConnect: true,
});

const epochs = new WeakMap<object, number>();

/** Counts socket closes of `conn`: a changed epoch means the connection's WATCH state is gone. */
export function epochOf(conn: RedisClient): number {
  return epochs.get(conn) ?? 0;
}

function trackEpoch<C extends RedisClient>(conn: C): C {
  epochs.set(conn, 0);
  conn.on('close', () => epochs.set(conn, (epochs.get(conn) ?? 0) + 1));
  // Errors surface on the commands that hit them; an unhandled 'error' event must not crash.
  conn.on('error', () => {});
  return conn;
}

/**
 * A duplicate of the user's client with resend disabled. `reconnect: false` makes a
 * closed connection final (dedicated WATCH connections are replaced, never revived).
 */
export function duplicateOwned(source: RedisClient, reconnect: boolean): RedisClient {
  if (source instanceof Cluster) {
    const redisOptions = { ...(source.options.redisOptions ?? {}), ...NO_RESEND, enableOfflineQueue: true };
    // retryDelayOnFailover: 0 stops ioredis from re-sending a command (or a whole MULTI
    // pipeline) whose node connection closed after it was written.
    return trackEpoch(
      source.duplicate(undefined, {
        redisOptions,
        lazyConnect: true,
        enableOfflineQueue: true,
        retryDelayOnFailover: 0,
      }),
    );
  }
  return trackEpoch(source.duplicate({ ...NO_RESEND, ...(reconnect ? {} : { retryStrategy: () => null }) }));
}

/** A dedicated connection to one node (for WATCH in cluster mode), never reconnecting. */
export function dedicatedNodeConnection(base: RedisOptions, host: string, port: number): Redis {
  return trackEpoch(new Redis({ ...base, host, port, ...NO_RESEND, retryStrategy: () => null }));
}

const pendingReady = new WeakMap<object, Promise<void>>();

/** Resolves when `conn` is ready; connects a lazy connection; fails if it ended or timed out. */
export async function whenReady(conn: RedisClient, timeoutMs: number): Promise<void> {
  if (conn.status === 'ready') return;
  if (conn.status === 'end')
    throw new ConnectionLostError('connection is closed; nothing was sent', { retryable: true });
  // Concurrent callers share one wait (and one set of listeners).
  let pending = pendingReady.get(conn);
  if (!pending) {
    pending = waitReady(conn, timeoutMs).finally(() => pendingReady.delete(conn));
    pendingReady.set(conn, pending);
  }
  return pending;
}

function waitReady(conn: RedisClient, timeoutMs: number): Promise<void> {
  if (conn.status === 'wait') conn.connect().catch(() => {});
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      conn.off('ready', onReady);
      conn.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const onEnd = () =>
      done(
        new ConnectionLostError('connection closed before it was ready; nothing was sent', {
          retryable: true,
        }),
      );
    const timer = setTimeout(
      () =>
        done(
          new ConnectionLostError(`connection not ready after ${timeoutMs} ms; nothing was sent`, {
            retryable: true,
          }),
        ),
      timeoutMs,
    );
    conn.on('ready', onReady);
    conn.on('end', onEnd);
  });
}

/**
 * True when a command written now reaches the socket. ioredis rejects, without writing,
 * a command whose stream is no longer writable (the peer closed it before 'close' fired);
 * checking here, in the same tick as the write, tells "not sent" apart from "sent, reply lost".
 */
export function canWrite(conn: RedisClient): boolean {
  if (conn.status !== 'ready') return false;
  if (conn instanceof Cluster) return true;
  const stream = conn.stream as { writable?: boolean; writableEnded?: boolean } | undefined;
  return !!stream && stream.writable === true && stream.writableEnded !== true;
}
