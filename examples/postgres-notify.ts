/**
 * LISTEN/NOTIFY: a notifier on its own connection, a notification sent inside a
 * transaction (delivered only on commit), and a resync hook for reconnects.
 *
 *   TXKIT_PG_URL=postgres://user@127.0.0.1:5432/db npx tsx examples/postgres-notify.ts
 */
import { postgres } from '../src/sql/postgres/index.js';

const url = process.env.TXKIT_PG_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_PG_URL (or DATABASE_URL)');

const db = postgres({ connectionString: url });
const notifier = db.notifier({
  onError: ({ channel, error }) => console.error(`handler on ${channel} failed:`, error),
});

// NOTIFY is not durable: after a reconnect, re-read whatever you keep in a table.
notifier.on('reconnect', ({ downtimeMs }) => console.log(`reconnected after ${downtimeMs} ms: resync now`));

const seen: string[] = [];
const done = new Promise<void>((resolve) => {
  void notifier.listenJson<{ id: number }>('orders', (order) => {
    seen.push(`order ${order.id}`);
    if (order.id === 2) resolve();
  });
});
await notifier.connect();

await db
  .transaction(async (tx) => {
    await tx.notifyJson('orders', { id: 1 });
    throw new Error('payment declined'); // rolled back: order 1 is never announced
  })
  .catch((err: Error) => console.log(`rolled back: ${err.message}`));

await db.transaction(async (tx) => {
  await tx.notifyJson('orders', { id: 2 }); // sent when this commits
});

await done;
console.log('received:', seen); // [ 'order 2' ]
await notifier.close();
await db.close();
