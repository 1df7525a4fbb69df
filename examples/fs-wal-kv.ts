/**
 * A key-value store on the write-ahead log: every set is fsynced before it is
 * acknowledged; snapshots checkpoint the log so old segments can go.
 *
 *   npx tsx examples/fs-wal-kv.ts [dir]   (run it twice with the same dir to see recovery)
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvStore } from '../src/fs/index.js';

const dir = process.argv[2] ?? join(tmpdir(), 'txkit-example-kv');
const kv = await KvStore.open(dir);
console.log('recovered:', kv.stats());
const runs = Number(kv.get('runs', 0)) + 1;
await kv.set('runs', runs);
// Concurrent sets share fsyncs (group commit); each resolves only once durable.
await Promise.all(Array.from({ length: 100 }, (_, i) => kv.set(`user:${i}`, { visits: runs })));
console.log(`run ${runs}: user:7 =`, kv.get('user:7'));
if (runs % 3 === 0) console.log('snapshot at LSN', await kv.snapshot());
await kv.close();
