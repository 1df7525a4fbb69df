import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/fs/crc32c.js';
import { DiskFullError } from '../../src/fs/errors.js';
import { faultyFs } from '../../src/fs/fault-injection.js';
import {
  RecordType,
  readWal,
  verifyWal,
  WalCorruptionError,
  WalFailedError,
  WalLockedError,
} from '../../src/fs/wal/index.js';
import { openWal, type WalOptions } from '../../src/fs/wal/wal.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();

async function all(dir: string, opts: WalOptions = {}, from = 1n) {
  const wal = await openWal(dir, opts);
  const got: { lsn: bigint; key: string; payload: string }[] = [];
  await wal.replay(from, (r) => {
    got.push({ lsn: r.lsn, key: r.key.toString(), payload: r.payload.toString() });
  });
  await wal.close();
  return got;
}

describe('crc32c', () => {
  it('matches the standard check values', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    const data = Buffer.from('the quick brown fox jumps over the lazy dog, twice over');
    expect(crc32c(data.subarray(20), crc32c(data.subarray(0, 20)))).toBe(crc32c(data));
  });
});

describe('wal', () => {
  it('round-trips odd records: empty key, 64 KiB key, multi-byte UTF-8, empty payload', async () => {
    const dir = tempDir();
    const wal = await openWal(dir);
    const recs = [
      { type: RecordType.SET, key: '', payload: 'v' },
      { type: RecordType.SET, key: 'k'.repeat(65_536), payload: '' },
      { type: RecordType.DELETE, key: 'ключ-鍵-🔑', payload: '{"a":null}' },
    ];
    for (const r of recs) await wal.append(r);
    expect(wal.stats().durableLsn).toBe(3n);
    await wal.close();
    const got = await all(dir);
    expect(got.map((g) => [g.lsn, g.key, g.payload])).toEqual(
      recs.map((r, i) => [BigInt(i + 1), r.key, r.payload]),
    );
  });

  it('group commit: 64 concurrent appenders share far fewer fsyncs', async () => {
    const dir = tempDir();
    const fs = faultyFs();
    const wal = await openWal(dir, { fs });
    const base = fs.calls.get('datasync') ?? 0;
    const lsns = await Promise.all(Array.from({ length: 64 }, (_, i) => wal.append({ key: `k${i}` })));
    const fsyncs = (fs.calls.get('datasync') ?? 0) - base;
    expect(new Set(lsns.map((l) => l.lsn)).size).toBe(64);
    expect(fsyncs).toBeGreaterThanOrEqual(1);
    expect(fsyncs).toBeLessThanOrEqual(4);
    expect(wal.stats().appends).toBe(64);
    await wal.close();
  });

  it('"sync" durability fsyncs every record', async () => {
    const dir = tempDir();
    const fs = faultyFs();
    const wal = await openWal(dir, { fs, durability: 'sync' });
    const base = fs.calls.get('datasync') ?? 0;
    await Promise.all(Array.from({ length: 5 }, () => wal.append({ payload: 'x' })));
    expect((fs.calls.get('datasync') ?? 0) - base).toBe(5);
    await wal.close();
  });

  it('rotates segments by size and recovers across them', async () => {
    const dir = tempDir();
    const wal = await openWal(dir, { maxSegmentBytes: 200 });
    for (let i = 0; i < 30; i++) await wal.append({ key: `k${i}`, payload: 'p'.repeat(40) });
    expect(wal.stats().segments).toBeGreaterThan(5);
    await wal.close();
    const got = await all(dir, { maxSegmentBytes: 200 });
    expect(got.map((g) => g.key)).toEqual(Array.from({ length: 30 }, (_, i) => `k${i}`));
    const v = await verifyWal(dir);
    expect(v.records).toBe(30);
    expect(v.corruption).toEqual([]);
  });

  it('checkpoint records an LSN: records appended after it replay after a crash', async () => {
    const dir = tempDir();
    const wal = await openWal(dir, { maxSegmentBytes: 150 });
    for (let i = 1; i <= 10; i++) await wal.append({ key: `a${i}` });
    expect(await wal.cleanupOldLogs(0)).toBe(0); // nothing is checkpointed yet
    await wal.checkpoint(10n);
    for (let i = 1; i <= 10; i++) await wal.append({ key: `b${i}` });
    const deleted = await wal.truncateBefore(11n);
    expect(deleted).toBeGreaterThan(0);
    await wal.close();
    const got = await all(dir, { maxSegmentBytes: 150 }, 11n);
    expect(got.map((g) => g.key)).toEqual(Array.from({ length: 10 }, (_, i) => `b${i + 1}`));
    const again = await openWal(dir);
    expect(again.stats().checkpointLsn).toBe(10n);
    await expect(again.checkpoint(99n)).rejects.toThrow(/not durable/);
    await again.close();
  });

  it('recovery truncates a torn tail and keeps every complete record', async () => {
    const dir = tempDir();
    const wal = await openWal(dir);
    for (let i = 0; i < 5; i++) await wal.append({ key: `k${i}`, payload: 'x'.repeat(10) });
    await wal.close();
    const seg = join(dir, readdirSync(dir).find((n) => n.startsWith('wal_'))!);
    const size = statSync(seg).size;
    appendFileSync(seg, Buffer.from([40, 0, 0, 0, 1, 2, 3])); // a partial 6th record
    const got = await all(dir);
    expect(got).toHaveLength(5);
    expect(statSync(seg).size).toBe(size);
    appendFileSync(seg, Buffer.alloc(100)); // zero-filled tail
    expect(await all(dir)).toHaveLength(5);
  });

  it('property: any truncation point or byte flip in the last segment recovers a valid prefix', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.string({ maxLength: 20 }), payload: fc.string({ maxLength: 200 }) }), {
          minLength: 1,
          maxLength: 20,
        }),
        fc.nat(),
        fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }))),
        async (recs, cutSeed, flip) => {
          const dir = tempDir();
          const wal = await openWal(dir);
          for (const r of recs) await wal.append(r);
          await wal.close();
          const seg = join(dir, readdirSync(dir).find((n) => n.startsWith('wal_'))!);
          let bytes = readFileSync(seg);
          bytes = bytes.subarray(0, 34 + (cutSeed % (bytes.length - 33)));
          if (flip && bytes.length > 34) {
            const at = 34 + (flip[0] % (bytes.length - 34));
            bytes[at] = bytes[at]! ^ flip[1];
          }
          writeFileSync(seg, bytes);
          const got = await all(dir);
          expect(got.length).toBeLessThanOrEqual(recs.length);
          got.forEach((g, i) => {
            expect(g.lsn).toBe(BigInt(i + 1));
            expect(g.key).toBe(recs[i]!.key);
            expect(g.payload).toBe(recs[i]!.payload);
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a bit flip in a sealed segment is corruption, named, never skipped', async () => {
    const dir = tempDir();
    const wal = await openWal(dir, { maxSegmentBytes: 120 });
    for (let i = 0; i < 10; i++) await wal.append({ key: `k${i}`, payload: 'y'.repeat(30) });
    await wal.close();
    const first = readdirSync(dir)
      .filter((n) => n.startsWith('wal_'))
      .sort()[0]!;
    const buf = readFileSync(join(dir, first));
    buf[buf.length - 3] = buf[buf.length - 3]! ^ 0x10;
    writeFileSync(join(dir, first), buf);
    const err = await openWal(dir).catch((e) => e);
    expect(err).toBeInstanceOf(WalCorruptionError);
    expect(err.segment).toBe(first);
    expect(err.message).toContain('checksum mismatch');
    const report = await verifyWal(dir);
    expect(report.corruption[0]?.segment).toBe(first);
    const kept = await all(dir, { onCorruption: 'truncate' });
    expect(kept.length).toBeLessThan(10);
    expect(kept.map((k) => k.key)).toEqual(Array.from({ length: kept.length }, (_, i) => `k${i}`));
  });

  it('a second writer is refused', async () => {
    const dir = tempDir();
    const wal = await openWal(dir);
    await expect(openWal(dir)).rejects.toBeInstanceOf(WalLockedError);
    await wal.close();
    await (await openWal(dir)).close();
  });

  it('an fsync error is fail-stop: never retried, all waiters rejected, acknowledged data kept', async () => {
    const dir = tempDir();
    const fs = faultyFs();
    const wal = await openWal(dir, { fs });
    await wal.append({ key: 'acked-1' });
    await wal.append({ key: 'acked-2' });
    fs.inject({ call: 'datasync', errno: 'EIO', times: 1 });
    const before = fs.calls.get('datasync') ?? 0;
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => wal.append({ key: `lost-${i}` })),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect((fs.calls.get('datasync') ?? 0) - before).toBe(1);
    expect(wal.state).toBe('failed');
    await expect(wal.append({ key: 'later' })).rejects.toBeInstanceOf(WalFailedError);
    await wal.close();
    const keys = (await all(dir)).map((g) => g.key);
    expect(keys.slice(0, 2)).toEqual(['acked-1', 'acked-2']);
  });

  it('ENOSPC on write rejects the batch, cuts the file back, and the WAL keeps working', async () => {
    const dir = tempDir();
    const fs = faultyFs();
    const wal = await openWal(dir, { fs });
    await wal.append({ key: 'a' });
    fs.inject({ call: 'write', errno: 'ENOSPC', times: 1 });
    const err = await wal.append({ key: 'b' }).catch((e) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    expect(wal.state).toBe('open');
    const { lsn } = await wal.append({ key: 'c' });
    expect(lsn).toBe(2n);
    await wal.close();
    expect((await all(dir)).map((g) => g.key)).toEqual(['a', 'c']);
  });

  it('close drains queued appends; readWal streams from an LSN', async () => {
    const dir = tempDir();
    const wal = await openWal(dir);
    const pending = Array.from({ length: 1000 }, (_, i) => wal.append({ key: String(i) }));
    await wal.close();
    await Promise.all(pending);
    const keys: string[] = [];
    for await (const r of readWal(dir, { fromLsn: 996n })) keys.push(r.key.toString());
    expect(keys).toEqual(['995', '996', '997', '998', '999']);
  });

  it('rejects bad options and oversize records', async () => {
    const dir = tempDir();
    await expect(openWal(dir, { maxSegmentBytes: 10 })).rejects.toThrow(
      /maxSegmentBytes must be an integer >= 35/,
    );
    await expect(openWal(dir, { durability: 'async' as never })).rejects.toThrow(/'group' or 'sync'/);
    const wal = await openWal(dir, { maxRecordBytes: 10 });
    await expect(wal.append({ payload: 'x'.repeat(11) })).rejects.toThrow(/maxRecordBytes/);
    await wal.close();
  });
});

describe('wal open with injected faults', () => {
  it('EACCES creating the first segment gives a typed error and releases the writer lock', async () => {
    const dir = tempDir();
    const err = await openWal(dir, { fs: faultyFs([{ call: 'open', errno: 'EACCES', path: 'wal_' }]) }).catch(
      (e) => e,
    );
    expect(err.code).toBe('E_FS_PERMISSION');
    expect(err.path).toBe(dir);
    await (await openWal(dir)).close(); // the lock was released
  });
});
