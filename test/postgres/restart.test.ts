/**
 * A prepared transaction survives a server crash (`pg_ctl stop -m immediate`) and restart,
 * keeps its locks meanwhile, and can then be committed. Runs on its own private cluster so
 * the restart does not disturb the other test files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockTimeoutError } from '../../src/core/errors.js';
import { makeGid, postgres } from '../../src/sql/postgres/index.js';
import {
  findPgBinDir,
  restartPrivateServer,
  type StartedServer,
  startPrivateCluster,
} from '../support/postgres-server.js';
import { rejection } from './helpers.js';

describe.skipIf(!findPgBinDir())('prepared transaction across a server crash (private cluster)', () => {
  let server: StartedServer | undefined;
  beforeAll(async () => {
    server = await startPrivateCluster();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('is still prepared after an immediate restart, holds its row lock, and commits afterwards', async () => {
    const url = server!.env.TXKIT_PG_URL!;
    const setup = postgres({ connectionString: url, max: 2 });
    await setup.execute('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)');
    await setup.execute('INSERT INTO accounts VALUES (1, 500)');
    const gid = makeGid('restart', 'bank1');
    const tx = await setup.begin();
    await tx.execute('UPDATE accounts SET balance = balance - 100 WHERE id = 1');
    await tx.physical.handle.prepare!(gid);
    await setup.close();

    await restartPrivateServer('immediate', server!.env);

    const db = postgres({ connectionString: url, max: 2 });
    try {
      const listed = await db.listPrepared('restart:');
      expect(listed.map((p) => p.gid)).toEqual([gid]);
      expect(listed[0]!.ageMs).toBeGreaterThanOrEqual(0);
      // its lock survived too
      const blocked = await rejection(
        db.transaction(async (t) => t.execute('UPDATE accounts SET balance = 0 WHERE id = 1'), {
          lockTimeoutMs: 100,
        }),
      );
      expect(blocked).toBeInstanceOf(LockTimeoutError);
      expect((await db.query<{ balance: number }>('SELECT balance FROM accounts'))[0]!.balance).toBe(500);
      await db.commitPrepared(gid);
      expect((await db.query<{ balance: number }>('SELECT balance FROM accounts'))[0]!.balance).toBe(400);
      expect(await db.listPrepared('restart:')).toEqual([]);
    } finally {
      await db.close();
    }
  });
});
