/**
 * The outcomes of MULTI/EXEC, produced for real: committed with a per-command error
 * (the other commands are applied: Redis never rolls back), and rejected at queue time
 * (nothing applied).
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/redis-multi.ts
 */
import { Redis } from 'ioredis';
import { ExecAbortError, redisTx } from '../src/redis/index.js';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const tx = redisTx(client);
const k = `example:multi:${process.pid}`;

try {
  await client.rpush(`${k}:list`, 'x');

  // 1. A run-time error (INCR on a list) fails that command alone; both SETs are applied.
  const r = await tx.multi((m) => m.set(`${k}:a`, '1').incr(`${k}:list`).set(`${k}:b`, '2'));
  if (r.status === 'committed') {
    for (const [i, reply] of r.replies.entries()) {
      console.log(`command ${i}:`, reply.ok ? reply.value : `failed (${reply.error.driverCode})`);
    }
    console.log('a, b after EXEC:', await client.mget(`${k}:a`, `${k}:b`), '(no rollback)');
  }

  // 2. A queue-time error (unknown command) aborts everything.
  try {
    await tx.multi((m) => m.set(`${k}:c`, '3').call('nosuchcommand'));
  } catch (err) {
    if (!(err instanceof ExecAbortError)) throw err;
    console.log('EXECABORT:', err.previousErrors.map((e) => `#${e.index} ${e.command}`).join(', '));
    console.log('c after EXECABORT:', await client.get(`${k}:c`), '(nothing applied)');
  }

  // 3. Discard before exec: nothing was ever sent.
  const m = tx.multi();
  m.set(`${k}:d`, '4');
  m.discard();
  console.log('state:', m.state, '- d:', await client.get(`${k}:d`));
} finally {
  await client.del(`${k}:a`, `${k}:b`, `${k}:list`);
  await tx.close();
  client.disconnect();
}
