/**
 * `PgNotifier`: LISTEN/NOTIFY on one dedicated connection that multiplexes all channels.
 *
 * - Channels are validated and always quoted; payloads are checked against the 8000-byte limit.
 * - Handlers run from a bounded queue with bounded concurrency (default 1: in order); a
 *   handler's error goes to `onError` and never stops the other handlers.
 * - The connection is watched (TCP keepalive plus a periodic `SELECT 1`). When it drops, the
 *   notifier reconnects with exponential backoff and jitter, re-LISTENs every channel, and
 *   emits `reconnect`. Notifications sent while it was down are lost (NOTIFY is not
 *   durable): on `reconnect`, resync from a table or an outbox.
 * - The connection never runs user transactions (a session inside a transaction receives
 *   nothing until it ends).
 *
 * @example
 * ```ts
 * const notifier = new PgNotifier({ connectionString: process.env.DATABASE_URL });
 * const stop = await notifier.listen('orders', (n) => console.log(n.payload));
 * notifier.on('reconnect', () => resyncOrdersFromTable());
 * await notifier.notify('orders', '42');
 * await stop();
 * await notifier.close();
 * ```
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ConnectionLostError, DatabaseClosedError, InvalidArgumentError } from '../../core/errors.js';
import { EventHub } from '../../core/events.js';
import { assertChannel, assertPayload, notify, quoteChannel } from './channel.js';
import { classifyPgError } from './errors.js';
import { HandlerQueue } from './handler-queue.js';
import { notificationIterator } from './notification-iterator.js';
import {
  type PgNotifierOptions,
  positiveInt,
  type ResolvedNotifierOptions,
  resolveNotifierOptions,
} from './notifier-options.js';
import {
  type Notification,
  type NotificationHandler,
  type NotificationIterator,
  NotificationQueueOverflowError,
  NotificationTimeoutError,
  type NotifierEvents,
  type NotifierStats,
  type NotifyErrorInfo,
} from './notify-types.js';

export { type NotifyTarget, notify } from './channel.js';
export type { OverflowPolicy } from './handler-queue.js';
export type { PgNotifierOptions } from './notifier-options.js';
export * from './notify-types.js';

/** Ends the iterators (and so the waiters) among `sinks`. */
function endIterators(sinks: Iterable<Sink>): void {
  for (const sink of sinks) if (sink.kind === 'direct') sink.end();
}

type Sink =
  | { kind: 'handler'; fn: NotificationHandler }
  | { kind: 'direct'; push: (n: Notification) => void; end: () => void };

export class PgNotifier {
  readonly #opts: ResolvedNotifierOptions;
  readonly #events = new EventHub<NotifierEvents>('txkit:notify:');
  readonly #channels = new Map<string, Set<Sink>>();
  readonly #closing = new AbortController();
  #client: pg.Client | undefined;
  #opening: Promise<pg.Client> | undefined;
  #reconnecting: Promise<void> | undefined;
  #everConnected = false;
  #closed: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #stats = { received: 0, dropped: 0, reconnects: 0 };
  readonly #queue: HandlerQueue<Notification>;

  constructor(private readonly options: PgNotifierOptions) {
    this.#opts = resolveNotifierOptions(options);
    const { overflow } = this.#opts;
    this.#queue = new HandlerQueue<Notification>(this.#opts.maxQueue, this.#opts.concurrency, overflow, {
      overflow: (job, policy, dropped) => {
        const n = job.notification;
        this.#events.emit('overflow', { channel: n.channel, policy, dropped });
        if (policy === 'error') {
          this.#reportError('overflow', {
            channel: n.channel,
            payload: n.payload,
            error: new NotificationQueueOverflowError(
              `handler queue full (${this.#opts.maxQueue}): notification dropped`,
            ),
          });
        }
      },
      handlerError: (n, error) =>
        this.#reportError('handler', { channel: n.channel, payload: n.payload, error }),
    });
  }

  /** Adds an event listener (`notification`, `disconnect`, `reconnect`, `overflow`, `error`). */
  on<K extends keyof NotifierEvents>(event: K, listener: (payload: NotifierEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /** Channels currently listened to. */
  get channels(): string[] {
    return [...this.#channels.keys()];
  }

  /** True while the listener connection is up. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** The listener session's server process id (for `ignoreSelf`, or to find it in pg_stat_activity). */
  get processId(): number | undefined {
    return (this.#client as unknown as { processID?: number } | undefined)?.processID;
  }

  stats(): NotifierStats {
    const q = this.#queue.stats();
    return {
      ...q,
      received: this.#stats.received,
      dropped: q.dropped + this.#stats.dropped,
      reconnects: this.#stats.reconnects,
    };
  }

  /** What the server says this session listens to (`pg_listening_channels()`), sorted. */
  async serverChannels(): Promise<string[]> {
    const client = await this.#ensureClient();
    const { rows } = await client.query<{ c: string }>('SELECT pg_listening_channels() AS c');
    return rows.map((r) => r.c).sort();
  }

  /** Opens the listener connection now (otherwise the first `listen()` does). */
  async connect(): Promise<void> {
    await this.#ensureClient();
  }

  /**
   * Calls `handler` for every notification on `channel`. Resolves once LISTEN is in effect,
   * with a function that removes the handler (and UNLISTENs when it was the last one).
   */
  async listen(channel: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    if (typeof handler !== 'function')
      throw new InvalidArgumentError('listen(channel, handler): handler must be a function');
    return this.#subscribe(channel, { kind: 'handler', fn: handler });
  }

  /** Like {@link listen}, with the payload parsed as JSON; parse errors go to `onError`. */
  async listenJson<T = unknown>(
    channel: string,
    handler: (value: T, n: Notification) => void | Promise<void>,
  ): Promise<() => Promise<void>> {
    return this.listen(channel, (n) => {
      let value: T;
      try {
        value = JSON.parse(n.payload) as T;
      } catch (error) {
        this.#reportError('json', { channel: n.channel, payload: n.payload, error });
        return;
      }
      return handler(value, n);
    });
  }

  /** UNLISTENs `channel` and drops all its handlers; its iterators and waiters end. */
  async unlisten(channel: string): Promise<void> {
    assertChannel(channel);
    const sinks = this.#channels.get(channel);
    if (!sinks) return;
    this.#channels.delete(channel);
    endIterators(sinks);
    await this.#command(`UNLISTEN ${quoteChannel(channel)}`);
  }

  /** `UNLISTEN *` and drops every handler; every iterator and waiter ends. */
  async unlistenAll(): Promise<void> {
    const all = [...this.#channels.values()];
    this.#channels.clear();
    for (const sinks of all) endIterators(sinks);
    await this.#command('UNLISTEN *');
  }

  /**
   * Sends a notification in autocommit (`SELECT pg_notify($1, $2)`). Inside a transaction
   * use `notify(tx, …)` instead, which is delivered only if the transaction commits.
   */
  async notify(channel: string, payload = ''): Promise<void> {
    // Checked before connecting: bad input never opens a session.
    assertChannel(channel);
    assertPayload(payload);
    await notify(this.options.sender ?? (await this.#ensureClient()), channel, payload);
  }

  /** {@link notify} with `JSON.stringify(value)` as the payload. */
  async notifyJson(channel: string, value: unknown): Promise<void> {
    await this.notify(channel, JSON.stringify(value));
  }

  /**
   * Resolves with the next notification on `channel`, or rejects with
   * {@link NotificationTimeoutError} after `timeoutMs` (default 30 000).
   * To be sure not to miss one sent right away, use {@link iterate} and await `ready`.
   */
  async waitForNotification(
    channel: string,
    options: { timeoutMs?: number; signal?: AbortSignal; filter?: (n: Notification) => boolean } = {},
  ): Promise<Notification> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const it = this.iterate(channel, options.signal ? { signal: options.signal } : {});
    const timeout = new AbortController();
    try {
      const timer = sleep(timeoutMs, undefined, { signal: timeout.signal }).then(
        () => {
          throw new NotificationTimeoutError(
            `no notification on channel "${channel}" within ${timeoutMs} ms`,
          );
        },
        () => undefined as never,
      );
      for (;;) {
        const r = await Promise.race([it.next(), timer]);
        if (r.done) {
          throw new DatabaseClosedError(
            `the channel "${channel}" was unlistened, or the notifier closed, while waiting for a notification`,
          );
        }
        if (!options.filter || options.filter(r.value)) return r.value;
      }
    } finally {
      timeout.abort();
      await it.return?.();
    }
  }

  /**
   * An async iterator over `channel` (`for await (const n of notifier.iterate('jobs'))`).
   * `break` (or `return()`) unsubscribes; `signal` ends it with `TransactionCancelledError`.
   * Holds at most `maxBuffer` unread notifications (default 1 000), dropping the oldest.
   */
  iterate(channel: string, options: { signal?: AbortSignal; maxBuffer?: number } = {}): NotificationIterator {
    assertChannel(channel);
    const maxBuffer = positiveInt('maxBuffer', options.maxBuffer, 1_000);
    return notificationIterator<Notification>(
      (push, end) => this.#subscribe(channel, { kind: 'direct', push, end }),
      {
        signal: options.signal,
        maxBuffer,
        onDrop: () => {
          this.#stats.dropped++;
        },
      },
    );
  }

  /**
   * UNLISTEN *, ends the connection, and resolves once running handlers finish (or after
   * `stopTimeoutMs`). Queued notifications not yet started are dropped. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  /** Alias of {@link close}. */
  stop(): Promise<void> {
    return this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    this.#closing.abort();
    if (this.#timer) clearInterval(this.#timer);
    const all = [...this.#channels.values()];
    this.#channels.clear();
    for (const sinks of all) endIterators(sinks);
    this.#queue.clear();
    const client = this.#client ?? (await this.#opening?.catch(() => undefined));
    this.#client = undefined;
    if (client) {
      await client.query('UNLISTEN *').catch(() => {});
      await client.end().catch(() => {});
    }
    await this.#queue.settle(this.#opts.stopTimeoutMs);
  }

  /** What #open LISTENed on each client, to catch up on channels added in between. */
  readonly #listenedBy = new WeakMap<pg.Client, Set<string>>();

  async #subscribe(channel: string, sink: Sink): Promise<() => Promise<void>> {
    assertChannel(channel);
    if (this.#closing.signal.aborted) throw new DatabaseClosedError('the notifier is closed');
    let sinks = this.#channels.get(channel);
    const first = !sinks;
    if (!sinks) {
      sinks = new Set();
      this.#channels.set(channel, sinks);
    }
    sinks.add(sink);
    const unsubscribe = async (): Promise<void> => {
      if (this.#removeSink(channel, sink)) await this.#command(`UNLISTEN ${quoteChannel(channel)}`);
    };
    if (first) {
      try {
        await this.#command(`LISTEN ${quoteChannel(channel)}`);
      } catch (err) {
        this.#removeSink(channel, sink);
        throw err;
      }
    } else {
      await this.#ensureClient();
    }
    return unsubscribe;
  }

  /** Removes a sink; true when it was the channel's last one (the caller UNLISTENs). */
  #removeSink(channel: string, sink: Sink): boolean {
    const sinks = this.#channels.get(channel);
    if (!sinks?.delete(sink)) return false;
    if (sinks.size > 0) return false;
    this.#channels.delete(channel);
    return true;
  }

  /**
   * Runs LISTEN/UNLISTEN on the listener connection. While reconnecting it only records the
   * change: the reconnect re-LISTENs whatever is subscribed then.
   */
  async #command(sql: string): Promise<void> {
    if (this.#closing.signal.aborted) return;
    if (this.#reconnecting) return;
    const client = await this.#ensureClient();
    try {
      await client.query(sql);
    } catch (err) {
      // Lost meanwhile: the reconnect LISTENs whatever is subscribed by then.
      if (client !== this.#client) return;
      throw classifyPgError(err);
    }
  }

  async #ensureClient(): Promise<pg.Client> {
    if (this.#closing.signal.aborted) throw new DatabaseClosedError('the notifier is closed');
    if (this.#client) return this.#client;
    if (this.#reconnecting) {
      await this.#reconnecting;
      if (this.#client) return this.#client;
      throw new DatabaseClosedError('the notifier is closed');
    }
    this.#opening ??= this.#open().then(
      (client) => {
        this.#opening = undefined;
        this.#client = client;
        this.#everConnected = true;
        this.#startHealthCheck();
        return client;
      },
      (err) => {
        this.#opening = undefined;
        throw classifyPgError(err, { phase: 'connect', nothingSent: true });
      },
    );
    return this.#opening;
  }

  /** Connects and LISTENs every subscribed channel; returns the client and what it listens to. */
  async #open(): Promise<pg.Client> {
    const client = new pg.Client(this.#opts.config);
    client.on('notification', (msg) => this.#onNotification(client, msg));
    client.on('error', (err) => this.#onConnectionLost(client, err));
    client.on('end', () =>
      this.#onConnectionLost(client, new ConnectionLostError('the listener connection ended')),
    );
    try {
      await client.connect();
      // Channels subscribed while a LISTEN batch runs are picked up by the next round.
      const listened = new Set<string>();
      for (;;) {
        const missing = [...this.#channels.keys()].filter((c) => !listened.has(c));
        if (missing.length === 0) break;
        await client.query(missing.map((c) => `LISTEN ${quoteChannel(c)}`).join('; '));
        for (const c of missing) listened.add(c);
      }
      this.#listenedBy.set(client, listened);
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  }

  #startHealthCheck(): void {
    if (this.#timer || this.#opts.healthCheckIntervalMs === 0) return;
    this.#timer = setInterval(() => {
      const client = this.#client;
      if (!client) return;
      client.query('SELECT 1').catch((err: unknown) => this.#onConnectionLost(client, err));
    }, this.#opts.healthCheckIntervalMs);
    this.#timer.unref?.();
  }

  #onConnectionLost(client: pg.Client, error: unknown): void {
    if (client !== this.#client || this.#closing.signal.aborted) return;
    this.#client = undefined;
    client.end().catch(() => {});
    this.#events.emit('disconnect', { error });
    if (this.#everConnected) this.#reconnecting ??= this.#reconnectLoop();
  }

  async #reconnectLoop(): Promise<void> {
    const started = Date.now();
    let attempts = 0;
    while (!this.#closing.signal.aborted) {
      const nominal = Math.min(
        this.#opts.backoff.initialDelayMs * this.#opts.backoff.factor ** attempts,
        this.#opts.backoff.maxDelayMs,
      );
      const delay = nominal * (0.8 + Math.random() * 0.4);
      attempts++;
      try {
        await sleep(delay, undefined, { signal: this.#closing.signal });
      } catch {
        return; // closed
      }
      let client: pg.Client;
      try {
        client = await this.#open();
      } catch (error) {
        this.#events.emit('error', { source: 'reconnect', error });
        continue;
      }
      if (this.#closing.signal.aborted) {
        await client.end().catch(() => {});
        return;
      }
      this.#client = client;
      this.#reconnecting = undefined;
      this.#stats.reconnects++;
      const listened = this.#listenedBy.get(client);
      const late = this.channels.filter((c) => !listened?.has(c));
      if (late.length > 0) {
        const ok = await client.query(late.map((c) => `LISTEN ${quoteChannel(c)}`).join('; ')).then(
          () => true,
          (error: unknown) => {
            this.#onConnectionLost(client, error);
            return false;
          },
        );
        if (!ok) return; // a new reconnect loop has started
      }
      this.#events.emit('reconnect', { attempts, downtimeMs: Date.now() - started, channels: this.channels });
      return;
    }
  }

  #onNotification(client: pg.Client, msg: pg.Notification): void {
    if (client !== this.#client) return;
    if (this.#opts.ignoreSelf && msg.processId === (client as unknown as { processID: number }).processID)
      return;
    const sinks = this.#channels.get(msg.channel);
    if (!sinks) return;
    this.#stats.received++;
    const n: Notification = {
      channel: msg.channel,
      payload: msg.payload ?? '',
      processId: msg.processId,
      receivedAt: new Date(),
    };
    this.#events.emit('notification', n);
    const handlers: NotificationHandler[] = [];
    for (const s of sinks) {
      if (s.kind === 'handler') handlers.push(s.fn);
      else s.push(n);
    }
    if (handlers.length > 0) this.#queue.push({ notification: n, handlers, queuedAt: performance.now() });
  }

  /** Resolves when no handler is running and nothing is queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  #reportError(source: string, info: NotifyErrorInfo): void {
    this.#events.emit('error', { source, ...info });
    if (this.options.onError) {
      try {
        this.options.onError(info);
      } catch (error) {
        this.#events.emit('error', { source: 'onError', error });
      }
    }
  }
}
