import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FileLockTimeoutError, LockCompromisedError } from '../../src/fs/errors.js';
import { fsEvents } from '../../src/fs/events.js';
import { type LockHandle, lock, tryLock } from '../../src/fs/lock.js';
import { breakLock, isLocked, lockStatus } from '../../src/fs/lock-admin.js';
import { lockMany } from '../../src/fs/lock-many.js';
import { currentProcess } from '../../src/fs/process-identity.js';
import { killed, runToEnd, spawnChild, waitForLine } from './spawn.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();
const fast = { pollIntervalMs: 5 };

function plantOwner(lockDir: string, epoch: number, owner: Record<string, unknown>, ageMs = 0) {
  const p = join(lockDir, `x.${String(epoch).padStart(16, '0')}`);
  writeFileSync(p, JSON.stringify({ token: 'planted', mode: 'exclusive', acquiredAt: '', epoch, ...owner }));
  const t = new Date(Date.now() - ageMs);
  utimesSync(p, t, t);
}

describe('lock', () => {
  it('excludes a second exclusive holder and exposes increasing fencing tokens', async () => {
    const f = join(tempDir(), 'data');
    const a = await lock(f, fast);
    expect(await tryLock(f)).toBeNull();
    expect(await isLocked(f)).toBe(true);
    await a.release();
    await a.release(); // idempotent
    expect(await isLocked(f)).toBe(false);
    const b = await lock(f, fast);
    expect(b.fencingToken).toBe(a.fencingToken + 1);
    await b.release();
  });

  it('times out with the holder named', async () => {
    const f = join(tempDir(), 'data');
    const a = await lock(f);
    const err = await lock(f, { timeoutMs: 50, ...fast }).catch((e) => e);
    expect(err).toBeInstanceOf(FileLockTimeoutError);
    expect(err.message).toContain(`pid ${process.pid}`);
    expect((err.holder as { token: string }).token).toBe(a.token);
    await a.release();
  });

  it('shared holders coexist; a writer waits for them and new readers wait for the writer', async () => {
    const f = join(tempDir(), 'data');
    const r1 = await lock(f, { mode: 'shared' });
    const r2 = await lock(f, { mode: 'shared' });
    let writerIn = false;
    const w = lock(f, { ...fast, timeoutMs: 5_000 }).then((h) => {
      writerIn = true;
      return h;
    });
    // Wait until the writer has taken its slot (visible on disk), then a new reader must wait.
    for (let i = 0; i < 1000 && !(await lockStatus(f)).exclusive; i++)
      await new Promise((r) => setImmediate(r));
    expect(await tryLock(f, { mode: 'shared' })).toBeNull();
    expect(writerIn).toBe(false);
    await r1.release();
    await r2.release();
    const wh = await w;
    expect(await tryLock(f, { mode: 'shared' })).toBeNull();
    await wh.release();
    const r3 = await lock(f, { mode: 'shared' });
    await r3.release();
  });

  it('a writer is not starved by a continuous stream of readers', async () => {
    const f = join(tempDir(), 'data');
    let stop = false;
    const readers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const r = await lock(f, { mode: 'shared', timeoutMs: 10_000, ...fast });
        await new Promise((res) => setTimeout(res, 10));
        await r.release();
      }
    });
    await new Promise((res) => setTimeout(res, 30));
    const w = await lock(f, { timeoutMs: 3_000, ...fast });
    stop = true;
    await w.release();
    await Promise.all(readers);
  });

  it('takes over a lock whose owner process is dead at once, and reports the break', async () => {
    const f = join(tempDir(), 'data');
    const first = await lock(f);
    await first.release();
    const dir = first.lockPath;
    plantOwner(dir, first.fencingToken + 1, {
      pid: 999_999_999,
      hostname: hostname(),
      bootId: currentProcess().bootId,
    });
    const seen: unknown[] = [];
    const off = fsEvents.on('lock-broken', (e) => seen.push(e.reason));
    const h = await lock(f, { timeoutMs: 0 });
    off();
    expect(h.fencingToken).toBe(first.fencingToken + 2);
    expect(String(seen[0])).toMatch(/999999999.*gone/);
    await h.release();
  });

  it('judges staleness by boot id, pid reuse and heartbeat age', async () => {
    const f = join(tempDir(), 'data');
    const base = await lock(f);
    await base.release();
    const me = currentProcess();
    let e = base.fencingToken;
    const cases: [Record<string, unknown>, number, boolean][] = [
      [{ pid: process.pid, hostname: me.hostname, bootId: 'another-boot' }, 0, true],
      [{ pid: process.pid, hostname: me.hostname, bootId: me.bootId, procStartTime: '1' }, 0, true], // pid reused
      [
        { pid: process.pid, hostname: me.hostname, bootId: me.bootId, procStartTime: me.procStartTime },
        0,
        false,
      ],
      [{ pid: 1, hostname: 'other-host' }, 0, false], // another host: only the heartbeat tells
      [{ pid: 1, hostname: 'other-host' }, 60_000, true],
    ];
    for (const [owner, age, stale] of cases) {
      plantOwner(base.lockPath, ++e, owner, age);
      const h = await tryLock(f, { staleMs: 10_000 });
      expect(h !== null).toBe(stale);
      if (h) {
        e = h.fencingToken;
        await h.release();
      }
    }
  });

  it('many contenders on a dead owner: exactly one wins the takeover', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 8 }), async (n) => {
        const f = join(tempDir(), 'data');
        const h0 = await lock(f);
        await h0.release();
        plantOwner(h0.lockPath, h0.fencingToken + 1, { pid: 999_999_999, hostname: hostname() });
        const got = await Promise.all(Array.from({ length: n }, () => tryLock(f)));
        const winners = got.filter((h): h is LockHandle => h !== null);
        expect(winners).toHaveLength(1);
        await winners[0]!.release();
      }),
      { numRuns: 15 },
    );
  });

  it('a holder learns it lost the lock (heartbeat), and release reports it', async () => {
    const f = join(tempDir(), 'data');
    const lost = new Promise<LockCompromisedError>((resolve) => {
      void lock(f, { staleMs: 200, updateMs: 20, onCompromised: resolve }).then(async (h) => {
        await breakLock(f, { force: true });
        const err = await lost;
        expect(h.compromised).toBe(true);
        expect(h.signal.aborted).toBe(true);
        expect(() => h.assertHeld()).toThrow(LockCompromisedError);
        await expect(h.release()).rejects.toBeInstanceOf(LockCompromisedError);
        expect(err.code).toBe('E_LOCK_COMPROMISED');
      });
    });
    const err = await lost;
    expect(err.message).toMatch(/lost/);
  });

  it('breakLock refuses a live lock without force', async () => {
    const f = join(tempDir(), 'data');
    const h = await lock(f);
    const err = await breakLock(f).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/force/);
    expect((err as { holder: { token: string } }).holder.token).toBe(h.token); // the owner record
    await h.release();
    expect((await breakLock(f)).broken).toBe(0);
    const reader = await lock(f, { mode: 'shared' }); // a released exclusive slot is no holder
    const byReader = await breakLock(f).catch((e: unknown) => e);
    expect((byReader as { holder: { token: string } }).holder.token).toBe(reader.token);
    await reader.release();
  });

  it('lockMany takes locks in sorted order and releases all on timeout', async () => {
    const d = tempDir();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(d, n)) as [string, string, string];
    const hc = await lock(c);
    const err = await lockMany([{ path: c }, { path: a }, { path: b, mode: 'shared' }], {
      timeoutMs: 60,
      ...fast,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(FileLockTimeoutError);
    expect(await isLocked(a)).toBe(false);
    expect(await isLocked(b)).toBe(false);
    await hc.release();
    const m = await lockMany([{ path: c }, { path: a }, { path: b, mode: 'shared' }]);
    expect(m.handles.map((h) => h.lockPath)).toEqual([a, b, c].map((p) => `${p}.lock`));
    expect(m.handles.map((h) => h.mode)).toEqual(['exclusive', 'shared', 'exclusive']);
    await m.release();
    expect(await isLocked(c)).toBe(false);
  });

  it('rejects bad options with what is allowed', async () => {
    await expect(lock('x', { mode: 'write' as never })).rejects.toThrow(/'shared' or 'exclusive'/);
    await expect(lock('x', { staleMs: 5 })).rejects.toThrow(/staleMs must be/);
    await expect(lock('')).rejects.toThrow(/non-empty/);
  });

  it('4 processes x 25 read-modify-write increments under the lock end at exactly 100', async () => {
    const f = join(tempDir(), 'counter');
    const runs = Array.from({ length: 4 }, () => runToEnd(spawnChild('lock-child.ts', ['counter', f, '25'])));
    for (const r of await Promise.all(runs)) expect(r.code).toBe(0);
    expect(readFileSync(f, 'utf8')).toBe('100');
    expect(await isLocked(f)).toBe(false);
  });

  it('a lock held by a SIGKILLed process is taken over by exactly one of several waiting processes', async () => {
    const f = join(tempDir(), 'data');
    const holder = spawnChild('lock-child.ts', ['hold', f, '5000']);
    const line = await waitForLine(holder, /^acquired/);
    const waiters = Array.from({ length: 3 }, () => spawnChild('lock-child.ts', ['hold', f, '1500']));
    const outcomes = waiters.map((w) => waitForLine(w, /^(acquired|timeout|error)/));
    holder.kill('SIGKILL');
    await killed(holder);
    const results = await Promise.all(outcomes);
    for (const w of waiters) w.kill('SIGKILL');
    await Promise.all(waiters.map(killed));
    expect(results.filter((r) => r.startsWith('acquired'))).toHaveLength(1);
    expect(results.filter((r) => r === 'timeout')).toHaveLength(2);
    const epoch = Number(line.split(' ')[1]);
    expect(results.find((r) => r.startsWith('acquired'))).toBe(`acquired ${epoch + 1}`);
  });

  it('a paused holder (SIGSTOP) loses the lock after staleMs; on SIGCONT it learns it was compromised', async () => {
    const f = join(tempDir(), 'data');
    const holder = spawnChild('lock-child.ts', ['hold', f, '5000', '600']);
    const line = await waitForLine(holder, /^acquired/);
    const oldToken = Number(line.split(' ')[1]);
    holder.kill('SIGSTOP');
    try {
      const mine = await lock(f, { staleMs: 600, timeoutMs: 10_000, pollIntervalMs: 50 });
      expect(mine.fencingToken).toBe(oldToken + 1); // storage can now reject writes fenced with oldToken
      const compromised = waitForLine(holder, /^compromised/);
      holder.kill('SIGCONT');
      expect(await compromised).toMatch(/epoch \d+ was taken by pid/);
      await mine.release();
    } finally {
      holder.kill('SIGKILL');
      await killed(holder);
    }
  });

  it('property: random try-acquire/release sequences match the reader-writer model exactly', async () => {
    const cmd = fc.oneof(
      fc.record({
        op: fc.constant('acquire' as const),
        who: fc.nat(3),
        mode: fc.constantFrom('shared', 'exclusive'),
      }),
      fc.record({ op: fc.constant('release' as const), who: fc.nat(3) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 25 }), async (cmds) => {
        const f = join(tempDir(), 'data');
        const held = new Map<number, LockHandle>();
        let lastEpoch = 0;
        for (const c of cmds) {
          if (c.op === 'release') {
            await held.get(c.who)?.release();
            held.delete(c.who);
            continue;
          }
          if (held.has(c.who)) continue; // one handle per actor
          const modes = [...held.values()].map((h) => h.mode);
          const allowed = c.mode === 'shared' ? !modes.includes('exclusive') : modes.length === 0;
          const h = await tryLock(f, { mode: c.mode as 'shared' | 'exclusive' });
          expect(h !== null).toBe(allowed);
          if (h) {
            if (h.mode === 'exclusive') {
              expect(h.fencingToken).toBeGreaterThan(lastEpoch); // fencing tokens only grow
              lastEpoch = h.fencingToken;
            }
            held.set(c.who, h);
          }
          expect(await isLocked(f)).toBe(held.size > 0);
        }
        for (const h of held.values()) await h.release();
        expect(await isLocked(f)).toBe(false);
      }),
      { numRuns: 40 },
    );
  });

  it('locks still held at process.exit() are released by the exit hook, not left to staleness', async () => {
    const f = join(tempDir(), 'data');
    const r = await runToEnd(spawnChild('lock-child.ts', ['exit', f]));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^acquired 1 /);
    const st = await lockStatus(f);
    expect(st.exclusive?.free).toBe('released'); // not "owner pid … is gone"
    expect((await lockStatus(`${f}-shared`)).readers).toEqual([]);
  });

  it('releaseAllLocks releases what this process holds', async () => {
    const { releaseAllLocks } = await import('../../src/fs/lock.js');
    const d = tempDir();
    await lock(join(d, 'a'));
    await lock(join(d, 'b'), { mode: 'shared' });
    expect(await releaseAllLocks()).toEqual([]);
    expect(await isLocked(join(d, 'a'))).toBe(false);
    expect(await isLocked(join(d, 'b'))).toBe(false);
  });
});
