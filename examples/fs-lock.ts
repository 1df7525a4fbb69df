/**
 * Cross-process locks: exclusive and shared, the fencing token, and several locks at once.
 * Run it in two terminals at the same time to see the second wait for the first.
 *
 *   npx tsx examples/fs-lock.ts [file]
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicWriteFile, lock, lockMany, lockStatus } from '../src/fs/index.js';

const file = process.argv[2] ?? join(tmpdir(), 'txkit-example-counter');

// Read-modify-write under one exclusive lock: no lost updates across processes.
const l = await lock(file, { timeoutMs: 30_000, label: 'fs-lock example' });
try {
  let n = 0;
  try {
    n = Number(readFileSync(file, 'utf8'));
  } catch {}
  console.log(`holding ${l.lockPath} (fencing token ${l.fencingToken}); counter ${n} -> ${n + 1}`);
  console.log('status seen by others:', JSON.stringify((await lockStatus(file)).exclusive?.owner?.pid));
  await new Promise((r) => setTimeout(r, 2000)); // hold it a moment so a second run has to wait
  l.assertHeld(); // throws if the lock was taken over (e.g. after a long pause): stop writing then
  await atomicWriteFile(file, String(n + 1));
} finally {
  await l.release();
}

// Several locks: always taken in sorted order, so two callers cannot deadlock.
const both = await lockMany([{ path: `${file}.b` }, { path: `${file}.a`, mode: 'shared' }], {
  timeoutMs: 5_000,
});
console.log('took', both.handles.map((h) => `${h.lockPath} (${h.mode})`).join(' then '));
await both.release();
