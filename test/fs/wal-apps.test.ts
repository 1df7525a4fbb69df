import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type FsAdapter, nodeFs } from '../../src/fs/fs-adapter.js';
import { DurableQueue } from '../../src/fs/wal/durable-queue.js';
import { KvStore } from '../../src/fs/wal/kv-store.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();

describe('KvStore on the WAL', () => {
  it('set/get/delete survive reopen; absent and null differ; delete of a missing key writes nothing', async () => {
    const dir = tempDir();
    const kv = await KvStore.open(dir);
    await kv.set('a', { n: 1 });
    await kv.set('nul', null);
    await kv.set('a', { n: 2 }); // full after-image replaces
    expect(await kv.delete('missing')).toBe(false);
    expect(await kv.delete('nul')).toBe(true);
    await kv.set('nul2', null);
    const lsn = kv.stats().lsn;
    await kv.close();
    const again = await KvStore.open(dir);
    expect(again.get('a')).toEqual({ n: 2 });
    expect(again.get('nul')).toBeUndefined();
    expect(again.get('nul2')).toBeNull();
    expect(again.get('nope', 'fallback')).toBe('fallback');
    expect(again.stats().lsn).toBe(lsn);
    await again.close();
  });

  it('a snapshot deletes the segments behind the previous one; recovery replays only what follows', async () => {
    const dir = tempDir();
    const kv = await KvStore.open(dir, { wal: { maxSegmentBytes: 256 } });
    for (let i = 0; i < 50; i++) await kv.set(`k${i % 7}`, i);
    const segsBefore = kv.stats().wal_files;
    await kv.snapshot();
    expect(kv.stats().wal_files).toBe(segsBefore); // the log from its start is the first snapshot's fallback
    for (let i = 50; i < 100; i++) await kv.set(`k${i % 7}`, i);
    const segsBeforeSecond = kv.stats().wal_files;
    await kv.snapshot();
    expect(kv.stats().wal_files).toBeLessThan(segsBeforeSecond - segsBefore / 2);
    for (let i = 100; i < 110; i++) await kv.set(`k${i % 7}`, i);
    await kv.snapshot();
    await kv.close();
    expect(readdirSync(dir).filter((n) => n.startsWith('snapshot-'))).toHaveLength(2);
    const again = await KvStore.open(dir, { wal: { maxSegmentBytes: 256 } });
    for (let i = 103; i < 110; i++) expect(again.get(`k${i % 7}`)).toBe(i);
    await again.close();
  });

  it('a newest snapshot damaged on disk falls back to the previous one and the log: nothing lost', async () => {
    const dir = tempDir();
    const kv = await KvStore.open(dir, { wal: { maxSegmentBytes: 256 } });
    for (let i = 0; i < 40; i++) await kv.set(`k${i % 5}`, i);
    await kv.snapshot();
    for (let i = 40; i < 80; i++) await kv.set(`k${i % 5}`, i);
    await kv.snapshot();
    await kv.set('after', 'both snapshots');
    await kv.delete('k0');
    const expected = Object.fromEntries(kv.keys().map((k) => [k, kv.get(k)]));
    await kv.close();
    const newest = readdirSync(dir)
      .filter((n) => n.startsWith('snapshot-'))
      .sort()
      .at(-1)!;
    const file = join(dir, newest);
    const original = readFileSync(file, 'utf8');
    const damaged = original.replace('"k1":76', '"k1":1076'); // bit rot that leaves valid JSON
    expect(damaged).not.toBe(original);
    writeFileSync(file, damaged);
    const again = await KvStore.open(dir, { wal: { maxSegmentBytes: 256 } });
    expect(Object.fromEntries(again.keys().map((k) => [k, again.get(k)]))).toEqual(expected);
    await again.close();
  });
});

describe('DurableQueue on the WAL', () => {
  it('delivers in order per group, persists acks, and compacts behind the slowest group', async () => {
    const dir = tempDir();
    const q = await DurableQueue.open(dir, { wal: { maxSegmentBytes: 200 } });
    for (let i = 1; i <= 30; i++) await q.enqueue(`m${i}`);
    const first = await q.read('billing', 10);
    expect(first.map((m) => m.body.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
    await q.ack('billing', first.at(-1)!.lsn);
    await q.ack('audit', 25n);
    expect(await q.compact()).toBeGreaterThan(0);
    await q.close();
    const again = await DurableQueue.open(dir, { wal: { maxSegmentBytes: 200 } });
    expect((await again.read('billing', 1))[0]?.body.toString()).toBe('m11');
    expect((await again.read('audit'))[0]?.body.toString()).toBe('m26');
    await expect(again.read('bad group!')).rejects.toThrow(/group must be/);
    await expect(again.ack('bad group!', 1n)).rejects.toThrow(/group must be/);
    await again.close();
  });

  it('read(group, max) reads no further than the segment holding its last message', async () => {
    const dir = tempDir();
    const segmentsRead: string[] = [];
    const counting: FsAdapter = {
      ...nodeFs,
      readFile: (path) => {
        if (/wal_\d+\.log$/.test(String(path))) segmentsRead.push(basename(String(path)));
        return nodeFs.readFile(path);
      },
    };
    const q = await DurableQueue.open(dir, { wal: { maxSegmentBytes: 200 }, fs: counting });
    for (let i = 1; i <= 60; i++) await q.enqueue(`m${i}`);
    segmentsRead.length = 0;
    const first = await q.read('billing', 2);
    expect(first.map((m) => m.body.toString())).toEqual(['m1', 'm2']);
    expect(segmentsRead).toHaveLength(1);
    await q.ack('billing', first[1]!.lsn);
    expect((await q.read('billing', 58)).map((m) => m.body.toString())).toEqual(
      Array.from({ length: 58 }, (_, i) => `m${i + 3}`),
    );
    await expect(q.read('billing', 0)).rejects.toThrow(/max must be an integer >= 1/);
    await q.close();
  });

  it('concurrent acks of different groups all last', async () => {
    const dir = tempDir();
    const q = await DurableQueue.open(dir);
    for (let i = 1; i <= 5; i++) await q.enqueue(`m${i}`);
    await Promise.all([q.ack('a', 3n), q.ack('b', 4n), q.ack('c', 5n)]);
    await q.close();
    const again = await DurableQueue.open(dir);
    expect([again.offset('a'), again.offset('b'), again.offset('c')]).toEqual([3n, 4n, 5n]);
    await again.close();
  });
});
