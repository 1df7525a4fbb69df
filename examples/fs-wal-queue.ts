/**
 * A durable message queue on the write-ahead log: enqueue is durable on resolve,
 * consumer groups acknowledge offsets, delivery is at-least-once.
 *
 *   npx tsx examples/fs-wal-queue.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DurableQueue } from '../src/fs/index.js';

const dir = mkdtempSync(join(tmpdir(), 'txkit-example-queue-'));
try {
  const q = await DurableQueue.open(dir);
  for (const m of ['charge card', 'send receipt', 'ship parcel']) await q.enqueue(m);

  const batch = await q.read('worker', 2);
  for (const m of batch) console.log(`processing #${m.lsn}: ${m.body}`);
  await q.ack('worker', batch.at(-1)!.lsn); // crash before this line = redelivery, never loss
  await q.close();

  const again = await DurableQueue.open(dir);
  console.log(
    'after restart, next for worker:',
    (await again.read('worker')).map((m) => m.body.toString()),
  );
  await again.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
