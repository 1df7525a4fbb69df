/**
 * LISTEN/NOTIFY on the real server: channel quoting, payload limits, transactional
 * delivery, handler isolation, bounded queue, iterators, and recovery after the listener
 * session is terminated.
 */
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidIdentifierError,
  NotifyPayloadTooLargeError,
  TransactionCancelledError,
} from '../../src/core/errors.js';
import { assertChannel } from '../../src/sql/postgres/channel.js';
import {
  type Notification,
  NotificationTimeoutError,
  notify,
  PgNotifier,
  type PgNotifierOptions,
} from '../../src/sql/postgres/notify.js';
import { connect, createTestDatabase, PG_URL, rejection, type TestDatabase } from './helpers.js';

const INJECTIONS = ['', 'a'.repeat(64), 'a b', 'x"; DROP TABLE t; --', "x'", 'é', 'a\u0000b', 'UNLISTEN *'];

describe('channel validation', () => {
  it('rejects names that could inject SQL or are too long, saying what is allowed', () => {
    for (const bad of INJECTIONS) {
      expect(() => assertChannel(bad), JSON.stringify(bad)).toThrow(InvalidIdentifierError);
    }
    expect(() => assertChannel('x"')).toThrow(/A-Z a-z 0-9 _ \. : -/);
    expect(() => assertChannel('Orders.Created:v1-x_y')).not.toThrow();
    expect(() => assertChannel('a'.repeat(63))).not.toThrow();
  });
});

describe.skipIf(!PG_URL)('PgNotifier (real server)', () => {
  let db: TestDatabase;
  let sender: pg.Client;
  const notifiers: PgNotifier[] = [];
  const make = (opts: Partial<PgNotifierOptions> = {}): PgNotifier => {
    const n = new PgNotifier({ connectionString: db.url, reconnect: { initialDelayMs: 10 }, ...opts });
    notifiers.push(n);
    return n;
  };

  beforeAll(async () => {
    db = await createTestDatabase('notify');
    sender = await connect(db.url);
  });
  afterEach(async () => {
    await Promise.all(notifiers.splice(0).map((n) => n.close()));
  });
  afterAll(async () => {
    await sender?.end();
    await db?.drop();
  });

  it('quotes channels: the name matches exactly, case included; bad names never reach the server', async () => {
    const n = make();
    const it = n.iterate('MyChan');
    await it.ready;
    await sender.query("SELECT pg_notify('mychan', 'folded')");
    await sender.query("SELECT pg_notify('MyChan', 'exact')");
    expect((await it.next()).value.payload).toBe('exact');
    await it.return!();
    for (const bad of INJECTIONS) {
      expect(await rejection(n.listen(bad, () => {}))).toBeInstanceOf(InvalidIdentifierError);
      expect(await rejection(n.notify(bad, 'x'))).toBeInstanceOf(InvalidIdentifierError);
    }
    expect(n.channels).toEqual([]);
    expect(await n.serverChannels()).toEqual([]);
  });

  it('multiplexes channels on one session, LISTENs channels added later, UNLISTENs the last handler', async () => {
    const n = make();
    const got: string[] = [];
    const offA = await n.listen('a', (x) => {
      got.push(`a:${x.payload}`);
    });
    const pid = n.processId;
    const offB = await n.listen('b', (x) => {
      got.push(`b:${x.payload}`);
    });
    const offB2 = await n.listen('b', () => {});
    expect(n.processId).toBe(pid);
    expect(await n.serverChannels()).toEqual(['a', 'b']);
    // 'b' is already listened to, so the waiter is subscribed before anything is sent
    const arrived = n.waitForNotification('b', { timeoutMs: 5_000 });
    await n.notify('a', '1');
    await n.notify('b', '2');
    await arrived;
    await n.idle();
    expect(got.sort()).toEqual(['a:1', 'b:2']);
    await offB();
    expect(await n.serverChannels()).toEqual(['a', 'b']);
    await offB2();
    expect(await n.serverChannels()).toEqual(['a']);
    await offA();
    expect(await n.serverChannels()).toEqual([]);
  });

  it('checks the payload byte limit before sending: 7999 bytes delivered, 8000 rejected', async () => {
    const n = make();
    const it = n.iterate('big');
    await it.ready;
    await n.notify('big', 'x'.repeat(7999));
    expect((await it.next()).value.payload).toHaveLength(7999);
    expect(await rejection(n.notify('big', 'x'.repeat(8000)))).toBeInstanceOf(NotifyPayloadTooLargeError);
    // 4000 two-byte characters are 8000 bytes
    expect(await rejection(n.notify('big', 'é'.repeat(4000)))).toBeInstanceOf(NotifyPayloadTooLargeError);
    expect(await rejection(notify(sender, 'big', 'é'.repeat(4000)))).toBeInstanceOf(
      NotifyPayloadTooLargeError,
    );
    await it.return!();
  });

  it('a notification sent in a transaction is dropped on rollback and delivered on commit, in commit order', async () => {
    const n = make();
    const it = n.iterate('tx');
    await it.ready;
    await sender.query('BEGIN');
    await notify(sender, 'tx', 'rolled-back');
    await sender.query('ROLLBACK');
    await sender.query('BEGIN');
    await notify(sender, 'tx', 'committed');
    await notify(sender, 'tx', 'committed'); // identical pairs in one transaction collapse
    await notify(sender, 'tx', 'second');
    await sender.query('COMMIT');
    const seen: string[] = [];
    for await (const x of it) {
      seen.push(x.payload);
      if (x.payload === 'second') break;
    }
    expect(seen).toEqual(['committed', 'second']);
  });

  it('isolates handler errors: the other handlers still run, the error goes to onError', async () => {
    const errors: unknown[] = [];
    const n = make({ onError: (info) => errors.push(info) });
    const got: string[] = [];
    await n.listen('iso', () => {
      throw new Error('boom');
    });
    await n.listen('iso', async (x) => {
      got.push(x.payload);
    });
    await n.listenJson('iso', (v) => {
      got.push(`json:${JSON.stringify(v)}`);
    });
    const arrived = n.waitForNotification('iso', {
      timeoutMs: 5_000,
      filter: (x) => x.payload.startsWith('{'),
    });
    await n.notify('iso', 'not json');
    await n.notify('iso', '{"a":1}');
    await arrived;
    await n.idle();
    expect(got).toEqual(['not json', '{"a":1}', 'json:{"a":1}']);
    expect(errors).toHaveLength(3); // boom twice, one JSON parse error
    expect(errors).toContainEqual(
      expect.objectContaining({ channel: 'iso', payload: 'not json', error: expect.any(SyntaxError) }),
    );
    expect(n.stats().handlerErrors).toBe(2);
  });

  it('bounds the handler queue: drop-oldest keeps the newest while a slow handler runs', async () => {
    const n = make({ maxQueue: 2, overflow: 'drop-oldest' });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const handled: string[] = [];
    await n.listen('q', async (x) => {
      if (x.payload === '1') await gate;
      handled.push(x.payload);
    });
    const overflows: number[] = [];
    n.on('overflow', (o) => overflows.push(o.dropped));
    const all = new Promise<void>((resolve) => {
      let count = 0;
      n.on('notification', () => {
        if (++count === 5) resolve();
      });
    });
    for (const p of ['1', '2', '3', '4', '5']) await sender.query('SELECT pg_notify($1, $2)', ['q', p]);
    await all;
    expect(n.stats()).toMatchObject({ queued: 2, inFlight: 1, dropped: 2 });
    release();
    await n.idle();
    expect(handled).toEqual(['1', '4', '5']);
    expect(overflows).toEqual([1, 2]);
    const hist = n.stats().queueLatencyHistogram;
    expect(hist.at(-1)).toEqual({ le: Number.POSITIVE_INFINITY, count: 3 });
    expect(hist.map((b) => b.count)).toEqual([...hist.map((b) => b.count)].sort((a, b) => a - b));
  });

  it('drop-newest and error policies keep the oldest', async () => {
    const errors: unknown[] = [];
    const n = make({ maxQueue: 1, overflow: 'error', onError: (e) => errors.push(e.error) });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const handled: string[] = [];
    await n.listen('q2', async (x) => {
      await gate;
      handled.push(x.payload);
    });
    const all = new Promise<void>((resolve) => {
      let count = 0;
      n.on('notification', () => {
        if (++count === 3) resolve();
      });
    });
    for (const p of ['1', '2', '3']) await sender.query('SELECT pg_notify($1, $2)', ['q2', p]);
    await all;
    release();
    await n.idle();
    expect(handled).toEqual(['1', '2']);
    expect(errors).toHaveLength(1);
    expect((errors[0] as { code: string }).code).toBe('E_NOTIFY_OVERFLOW');
  });

  it('waitForNotification times out with NotificationTimeoutError; an aborted iterator rejects', async () => {
    const n = make();
    const e = await rejection(n.waitForNotification('quiet', { timeoutMs: 30 }));
    expect(e).toBeInstanceOf(NotificationTimeoutError);
    const ac = new AbortController();
    const it = n.iterate('quiet', { signal: ac.signal });
    await it.ready;
    const next = it.next();
    ac.abort();
    expect(await rejection(next)).toBeInstanceOf(TransactionCancelledError);
    // waiters and iterators are gone, so the channel is no longer listened to
    expect(await n.serverChannels()).toEqual([]);
  });

  it('ignoreSelf skips this session’s own notifications', async () => {
    const n = make({ ignoreSelf: true });
    const it = n.iterate('self');
    await it.ready;
    await n.notify('self', 'mine');
    await sender.query("SELECT pg_notify('self', 'theirs')");
    const first = (await it.next()).value as Notification;
    expect(first.payload).toBe('theirs');
    expect(first.processId).toBe((sender as unknown as { processID: number }).processID);
    await it.return!();
  });

  it('recovers after pg_terminate_backend: reconnects, re-LISTENs, emits reconnect, delivers again', async () => {
    const n = make();
    const got: string[] = [];
    await n.listen('r1', (x) => {
      got.push(x.payload);
    });
    await n.listen('r2', (x) => {
      got.push(x.payload);
    });
    const oldPid = n.processId!;
    const disconnected = new Promise((resolve) => n.on('disconnect', resolve));
    const reconnected = new Promise<{ attempts: number; channels: string[] }>((resolve) =>
      n.on('reconnect', resolve),
    );
    await sender.query('SELECT pg_terminate_backend($1)', [oldPid]);
    await disconnected;
    // a channel added while disconnected is LISTENed by the reconnect as well
    const off3 = await n.listen('r3', (x) => {
      got.push(x.payload);
    });
    const info = await reconnected;
    expect(info.channels.sort()).toEqual(['r1', 'r2', 'r3']);
    expect(n.processId).not.toBe(oldPid);
    expect(await n.serverChannels()).toEqual(['r1', 'r2', 'r3']);
    const done = n.waitForNotification('r3', { timeoutMs: 5_000 });
    await sender.query(
      "SELECT pg_notify('r1', 'after-1'), pg_notify('r2', 'after-2'), pg_notify('r3', 'after-3')",
    );
    await done;
    await n.idle();
    expect(got).toEqual(['after-1', 'after-2', 'after-3']);
    expect(n.stats().reconnects).toBe(1);
    await off3();
  });

  it('close waits for running handlers, but not past stopTimeoutMs', async () => {
    const slow = make({ stopTimeoutMs: 10_000 });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let finished = false;
    const started = new Promise<void>((resolve) => {
      void slow.listen('stop', async () => {
        resolve();
        await gate;
        finished = true;
      });
    });
    await slow.connect();
    await sender.query("SELECT pg_notify('stop', 'x')");
    await started;
    const closing = slow.close();
    release();
    await closing;
    expect(finished).toBe(true);

    const stuck = make({ stopTimeoutMs: 30 });
    const running = new Promise<void>((resolve) => {
      void stuck.listen('stop2', () => {
        resolve();
        return new Promise<void>(() => {}); // never ends
      });
    });
    await stuck.connect();
    await sender.query("SELECT pg_notify('stop2', 'x')");
    await running;
    const t0 = performance.now();
    await stuck.close();
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('unlisten and unlistenAll end the channel: its iterators finish and the server stops listening', async () => {
    const n = make();
    const a = n.iterate('ua');
    const b = n.iterate('ub');
    await Promise.all([a.ready, b.ready]);
    let handled = 0;
    await n.listen('uc', () => {
      handled++;
    });
    const nextA = a.next();
    await n.unlisten('ua');
    expect(await nextA).toEqual({ value: undefined, done: true });
    expect((await n.serverChannels()).sort()).toEqual(['ub', 'uc']);
    const nextB = b.next();
    await n.unlistenAll();
    expect(await nextB).toEqual({ value: undefined, done: true });
    expect(await n.serverChannels()).toEqual([]);
    await sender.query("SELECT pg_notify('uc', 'after')");
    await n.idle();
    expect(handled).toBe(0);
  });

  it('close is idempotent and ends iterators; nothing can subscribe afterwards', async () => {
    const n = make();
    const it = n.iterate('c');
    await it.ready;
    const next = it.next();
    await Promise.all([n.close(), n.close()]);
    expect(await next).toEqual({ value: undefined, done: true });
    expect((await rejection(n.listen('c', () => {}))) as { code: string }).toMatchObject({
      code: 'E_CLOSED',
    });
  });
});
