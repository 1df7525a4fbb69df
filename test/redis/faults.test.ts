/**
 * Connection faults after a command was sent. These tests hold writes server-wide with
 * `CLIENT PAUSE WRITE`, so they run on a throwaway server of their own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type PipelineResult,
  type RedisTx,
  redisTx,
  TransactionOutcomeUnknownError,
} from '../../src/redis/index.js';
import { canStartPrivate, client, closeClients, prefix, privateServer, until } from './redis-test-env.js';

describe.skipIf(!canStartPrivate)('redis faults after send', () => {
  let server: Awaited<ReturnType<typeof privateServer>>;
  let other: ReturnType<typeof client>;
  let admin: ReturnType<typeof client>;

  beforeAll(async () => {
    server = await privateServer();
    other = client({ url: server.url });
    admin = client({ url: server.url });
  });
  afterAll(async () => {
    await closeClients();
    await server.stop();
  });

  /** A redisTx whose connections carry a unique name, so CLIENT LIST can find them. */
  function victim(): { tx: RedisTx; name: string } {
    const name = `txkit-victim-${prefix().slice(2)}`;
    return { tx: redisTx(client({ url: server.url, connectionName: name })), name };
  }

  /** Runs `run` while writes are held server-side, kills the named connection once it is blocked, returns the outcome. */
  async function killWhileBlocked<T>(name: string, run: () => Promise<T>): Promise<T | unknown> {
    await admin.call('client', 'pause', 60_000, 'WRITE');
    try {
      const pending = run().catch((e: unknown) => e);
      const blocked = async () =>
        ((await admin.call('client', 'list')) as string)
          .split('\n')
          .find((l) => l.includes(`name=${name}`) && /flags=\S*b/.test(l));
      await until(async () => (await blocked()) !== undefined);
      const id = /id=(\d+)/.exec((await blocked())!)![1]!;
      await admin.call('client', 'kill', 'id', id);
      await admin.call('client', 'unpause');
      return await pending;
    } finally {
      await admin.call('client', 'unpause').catch(() => {});
    }
  }

  it('a connection killed after EXEC was sent gives an unknown outcome and is never re-sent', async () => {
    const p = prefix();
    const { tx, name } = victim();
    try {
      await tx.multi((m) => m.get(`${p}:warmup`)); // opens txkit's own connection
      const m = tx.multi();
      m.set(`${p}:k`, 'v').incr(`${p}:n`);
      const err = await killWhileBlocked(name, () => m.exec());
      expect(err).toBeInstanceOf(TransactionOutcomeUnknownError);
      expect((err as TransactionOutcomeUnknownError).code).toBe('E_COMMIT_UNKNOWN');
      expect(m.state).toBe('unknown');
      expect(tx.metrics.counter('redis_tx_outcome_unknown_total')).toBe(1);
      // The next transaction runs on a reconnected connection, and the lost one was not re-sent.
      const next = await tx.multi((mm) => mm.get(`${p}:k`).get(`${p}:n`));
      expect(next).toMatchObject({ status: 'committed', replies: [{ value: null }, { value: null }] });
      expect(await other.mget(`${p}:k`, `${p}:n`)).toEqual([null, null]);
    } finally {
      await tx.close();
    }
  });

  it('an optimistic transaction whose EXEC reply is lost reports unknown and is not retried', async () => {
    const p = prefix();
    const { tx, name } = victim();
    try {
      await other.set(`${p}:c`, '1');
      let calls = 0;
      const err = await killWhileBlocked(name, () =>
        tx.optimistic([`${p}:c`], async (read) => {
          calls++;
          const v = Number(await read.get(`${p}:c`));
          return (m) => m.set(`${p}:c`, v + 1);
        }),
      );
      expect(err).toBeInstanceOf(TransactionOutcomeUnknownError);
      expect(calls).toBe(1);
      expect(await other.get(`${p}:c`)).toBe('1');
    } finally {
      await tx.close();
    }
  });

  it('never re-sends a non-idempotent pipeline batch: unknown, then not-attempted', async () => {
    const p = prefix();
    const { tx, name } = victim();
    try {
      await tx.pipeline([['ping']]);
      const r = (await killWhileBlocked(name, () =>
        tx.pipeline(
          [
            ['incr', `${p}:n`],
            ['incr', `${p}:n`],
            ['incr', `${p}:n`],
          ],
          { batchSize: 2 },
        ),
      )) as PipelineResult;
      expect(r.replies.map((x) => x.status)).toEqual(['unknown', 'unknown', 'not-attempted']);
      const first = r.replies[0]!;
      if (first.status === 'unknown') expect(first.error).toBeInstanceOf(TransactionOutcomeUnknownError);
      // Killed while held by the pause: never run, and never re-sent after the reconnect.
      expect((await tx.pipeline([['get', `${p}:n`]])).replies[0]).toMatchObject({ value: null });
      expect(await other.get(`${p}:n`)).toBeNull();
    } finally {
      await tx.close();
    }
  });

  it('re-sends a batch of idempotent commands after the connection failed', async () => {
    const p = prefix();
    const { tx, name } = victim();
    try {
      await tx.pipeline([['ping']]);
      const r = (await killWhileBlocked(name, () =>
        tx.pipeline([
          ['set', `${p}:a`, '1'],
          ['del', `${p}:b`],
        ]),
      )) as PipelineResult;
      expect(r.replies.map((x) => x.status)).toEqual(['applied', 'applied']);
      expect(await other.get(`${p}:a`)).toBe('1');
    } finally {
      await tx.close();
    }
  });

  it('a script run whose reply is lost reports unknown', async () => {
    const p = prefix();
    const { tx, name } = victim();
    try {
      const inc = tx.scripts.define('inc', { numberOfKeys: 1, lua: "return redis.call('INCR', KEYS[1])" });
      await tx.scripts.run(inc, [`${p}:warm`]);
      const err = await killWhileBlocked(name, () => tx.scripts.run(inc, [`${p}:n`]));
      expect(err).toBeInstanceOf(TransactionOutcomeUnknownError);
      expect(await other.get(`${p}:n`)).toBeNull();
    } finally {
      await tx.close();
    }
  });
});
