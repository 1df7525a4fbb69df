/**
 * Power-loss tests: everything not fsynced is lost (the simulator's worst case), at every
 * (or a random) filesystem call. These show what process-kill tests cannot: that the
 * fsyncs are in the right places.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { atomicWriteFile, type Durability } from '../../src/fs/atomic-write.js';
import { crashingFs } from '../../src/fs/fault-injection.js';
import { fsTransaction } from '../../src/fs/file-tx/manager.js';
import type { FileTx } from '../../src/fs/file-tx/transaction.js';
import { powerLossFs } from '../../src/fs/power-loss.js';
import { KvStore } from '../../src/fs/wal/kv-store.js';
import { openWal } from '../../src/fs/wal/wal.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();
const OLD = 'old content, complete';
const NEW = 'new content, also complete!';

/** Crashes a replace at call `n`, cuts the power, returns what the target holds and whether the call resolved. */
async function replaceThenPowerLoss(n: number, durability: Durability, laterDirSync = false) {
  const dir = tempDir();
  const target = join(dir, 'file');
  writeFileSync(target, OLD);
  const pl = powerLossFs(dir);
  const resolved = await atomicWriteFile(target, NEW, { fs: crashingFs(n, pl), durability }).then(
    () => true,
    () => false,
  );
  // Someone else's directory fsync (or the filesystem's periodic commit) makes the rename
  // durable before the data: what delayed allocation allows.
  if (laterDirSync) await pl.syncDir(dir);
  pl.powerLoss();
  let after: string | undefined;
  try {
    after = readFileSync(target, 'utf8');
  } catch {
    after = undefined;
  }
  return { resolved, after };
}

describe('power loss (unsynced data and renames are lost)', () => {
  it('atomicWriteFile: at every crash point the target is entirely old or new, and new once resolved', async () => {
    let sawNew = false;
    for (let n = 0; n < 40; n++) {
      const { resolved, after } = await replaceThenPowerLoss(n, 'full');
      expect([OLD, NEW]).toContain(after);
      if (resolved) expect(after).toBe(NEW); // acknowledged = durable
      if (after === NEW) sawNew = true;
    }
    expect(sawNew).toBe(true);
  });

  it("negative controls: without fsync ('none') the target can come back empty; without the directory fsync ('data') an acknowledged replace can be undone", async () => {
    const none = await replaceThenPowerLoss(Number.MAX_SAFE_INTEGER, 'none', true);
    expect(none.resolved).toBe(true);
    expect(none.after).toBe(''); // the seed's protocol (E8-1, E8-5): renamed, never synced
    const data = await replaceThenPowerLoss(Number.MAX_SAFE_INTEGER, 'data');
    expect(data.resolved).toBe(true);
    expect(data.after).toBe(OLD); // write-file-atomic's protocol: the rename was not durable
  });

  it('WAL: after a power loss at a random point, exactly the acknowledged records remain', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 1, max: 16 }),
        async (crashAt, appenders) => {
          const dir = tempDir();
          const pl = powerLossFs(dir);
          const acked = new Set<string>();
          const submitted = new Set<string>();
          let crashed: Awaited<ReturnType<typeof openWal>> | undefined;
          try {
            const wal = await openWal(join(dir, 'wal'), { fs: crashingFs(crashAt, pl) });
            crashed = wal;
            await Promise.all(
              Array.from({ length: appenders }, async (_, w) => {
                for (let i = 0; ; i++) {
                  const key = `w${w}-${i}`;
                  submitted.add(key);
                  await wal.append({ key, payload: key.repeat(3) });
                  acked.add(key);
                }
              }),
            );
          } catch {
            // the simulated crash
          }
          await crashed?.close(); // a dead process's descriptors close too
          pl.powerLoss();
          const wal = await openWal(join(dir, 'wal'), { lock: false });
          const got: string[] = [];
          let expectLsn = 1n;
          await wal.replay(1n, (r) => {
            expect(r.lsn).toBe(expectLsn++);
            expect(r.payload.toString()).toBe(r.key.toString().repeat(3));
            got.push(r.key.toString());
          });
          await wal.close();
          expect(new Set(got)).toEqual(acked); // none lost, none extra (one segment: no early syncs)
        },
      ),
      { numRuns: 40 },
    );
  });

  it('fsTransaction: after a power loss at every call, recovery yields all-old or all-new (new once resolved)', async () => {
    const pre = { 'a.txt': 'A1', 'b.txt': 'B1', 'c.txt': 'C1' };
    const post = { 'c.txt': 'A2', 'moved/c.txt': 'C1', 'new/d.txt': 'D' };
    const ops = async (t: FileTx) => {
      await t.write('a.txt', 'A2');
      await t.create('new/d.txt', 'D');
      await t.delete('b.txt');
      await t.rename('c.txt', 'moved/c.txt');
      await t.rename('a.txt', 'c.txt');
    };
    const tree = (root: string) => {
      const out: Record<string, string> = {};
      const walk = (d: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) {
            if (e.name !== '.fstx') walk(join(d, e.name));
          } else out[relative(root, join(d, e.name))] = readFileSync(join(d, e.name), 'utf8');
        }
      };
      walk(root);
      return JSON.stringify(Object.fromEntries(Object.entries(out).sort()));
    };
    const probeRoot = tempDir();
    for (const [p, c] of Object.entries(pre)) writeFileSync(join(probeRoot, p), c);
    const probe = crashingFs(Number.MAX_SAFE_INTEGER, powerLossFs(probeRoot));
    await fsTransaction(probeRoot, { fs: probe }).transaction(ops);
    const outcomes = new Set<string>();
    for (let n = 0; n <= probe.count; n++) {
      const root = tempDir();
      for (const [p, c] of Object.entries(pre)) writeFileSync(join(root, p), c);
      mkdirSync(join(root, '.keep'));
      const pl = powerLossFs(root);
      const resolved = await fsTransaction(root, { fs: crashingFs(n, pl) })
        .transaction(ops)
        .then(
          () => true,
          () => false,
        );
      pl.powerLoss();
      rmSync(join(root, '.fstx', 'ROOT.lock'), { recursive: true, force: true }); // the "dead" process's lock
      await fsTransaction(root).recover();
      const got = tree(root);
      expect([tree0(pre), tree0(post)]).toContain(got);
      if (resolved) expect(got).toBe(tree0(post));
      outcomes.add(got === tree0(post) ? 'new' : 'old');
    }
    expect([...outcomes].sort()).toEqual(['new', 'old']);
  });

  it('KvStore: a power cut during sets, segment rotations and snapshots keeps every acknowledged set', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 900 }), async (crashAt) => {
        const dir = tempDir();
        const pl = powerLossFs(dir);
        const acked: string[] = [];
        const submitted = new Set<string>();
        let crashed: KvStore | undefined;
        try {
          const kv = await KvStore.open(join(dir, 'kv'), {
            fs: crashingFs(crashAt, pl),
            wal: { maxSegmentBytes: 300 },
          });
          crashed = kv;
          for (let i = 0; ; i++) {
            submitted.add(`k${i}`);
            await kv.set(`k${i}`, i);
            acked.push(`k${i}`);
            if (i % 7 === 6) await kv.snapshot();
          }
        } catch {
          // the simulated crash
        }
        await crashed?.close().catch(() => {}); // a dead process's descriptors close too
        pl.powerLoss();
        rmSync(join(dir, 'kv', 'wal', 'LOCK.lock'), { recursive: true, force: true });
        const kv = await KvStore.open(join(dir, 'kv'), { wal: { maxSegmentBytes: 300 } });
        for (const k of acked) expect(kv.get(k)).toBe(Number(k.slice(1)));
        for (const k of kv.keys()) expect(submitted.has(k)).toBe(true);
        await kv.close();
      }),
      { numRuns: 40 },
    );
  });
});

function tree0(o: Record<string, string>) {
  return JSON.stringify(Object.fromEntries(Object.entries(o).sort()));
}
