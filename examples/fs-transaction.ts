/**
 * A multi-file transaction: all changes appear together or not at all, even across a
 * crash (recovery runs when the next manager opens the directory). Also the prepared
 * state a two-phase-commit coordinator uses.
 *
 *   npx tsx examples/fs-transaction.ts
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsTransaction } from '../src/fs/index.js';

const root = mkdtempSync(join(tmpdir(), 'txkit-example-'));
try {
  mkdirSync(join(root, 'inbox'));
  writeFileSync(join(root, 'inbox', 'order-42.json'), '{"id":42}');
  const files = fsTransaction(root);

  await files.transaction(async (t) => {
    await t.write('orders/42.json', '{"id":42,"state":"accepted"}');
    await t.rename('inbox/order-42.json', 'archive/order-42.json');
    await t.write('index.txt', '42\n');
  });
  console.log('after commit:', readdirSync(root).sort().join(' '));

  await files
    .transaction(async (t) => {
      await t.delete('index.txt');
      throw new Error('changed my mind');
    })
    .catch((err: Error) =>
      console.log('rolled back:', err.message, '-> index.txt kept:', readdirSync(root).includes('index.txt')),
    );

  // Two-phase: prepare (durable, invisible), then decide later, even from another process.
  const t = await files.begin();
  await t.write('orders/43.json', '{"id":43}');
  await t.prepare('saga-7:files');
  console.log(
    'prepared:',
    (await files.listPrepared('saga-7')).map((p) => p.gid),
  );
  await files.commitPrepared('saga-7:files');
  console.log('orders:', readdirSync(join(root, 'orders')).sort().join(' '));
} finally {
  rmSync(root, { recursive: true, force: true });
}
