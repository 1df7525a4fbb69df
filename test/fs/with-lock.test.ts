import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import { LockCompromisedError, LockReentryError, LockUpgradeError } from '../../src/fs/errors.js';
import { lock, tryLock } from '../../src/fs/lock.js';
import { breakLock, isLocked, lockStatus } from '../../src/fs/lock-admin.js';
import { lockMany } from '../../src/fs/lock-many.js';
import { withLock } from '../../src/fs/with-lock.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();
// Long enough that a request waiting on its own scope would fail the test by timing out.
const patient = { pollIntervalMs: 5, timeoutMs: 30_000 };

/** Milliseconds `p` took to settle, with its error. */
async function timed(p: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return { ms: performance.now() - started, error };
}

describe('withLock', () => {
  it('holds the lock for the callback only, returns its value, and releases when it throws', async () => {
    const f = join(tempDir(), 'data');
    const value = await withLock(f, {}, async (l) => {
      expect(l.mode).toBe('exclusive');
      expect(await isLocked(f)).toBe(true);
      return 42;
    });
    expect(value).toBe(42);
    expect(await isLocked(f)).toBe(false);
    const boom = new Error('business rule');
    await expect(
      withLock(f, {}, async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await isLocked(f)).toBe(false);
  });

  it('refuses an upgrade at once, through withLock, lock and lockMany alike', async () => {
    const f = join(tempDir(), 'data');
    await withLock(f, { ...patient, mode: 'shared' }, async () => {
      // One at a time: each request starts only when awaited, so none rejects unobserved.
      for (const request of [
        () => withLock(f, { ...patient, mode: 'exclusive', reentrant: true }, async () => {}),
        () => lock(f, patient),
        () => lockMany([{ path: f }], patient),
      ]) {
        const { ms, error } = await timed(request());
        expect(error).toBeInstanceOf(LockUpgradeError);
        expect(ms).toBeLessThan(1_000);
      }
    });
    expect(await isLocked(f)).toBe(false);
  });

  it('two readers upgrading at once both fail fast instead of waiting on each other', async () => {
    const f = join(tempDir(), 'data');
    const reader = () =>
      withLock(f, { ...patient, mode: 'shared' }, async () => {
        await new Promise((r) => setImmediate(r)); // both readers are inside before either upgrades
        return timed(withLock(f, { ...patient, mode: 'exclusive' }, async () => {}));
      });
    const [a, b] = await Promise.all([reader(), reader()]);
    for (const { ms, error } of [a, b]) {
      expect(error).toBeInstanceOf(LockUpgradeError);
      expect(ms).toBeLessThan(1_000);
    }
  });

  it('re-entry needs reentrant: true, and then reuses the held lock, which stays held', async () => {
    const f = join(tempDir(), 'data');
    await withLock(f, patient, async (outer) => {
      const { ms, error } = await timed(withLock(f, patient, async () => {}));
      expect(error).toBeInstanceOf(LockReentryError);
      expect(ms).toBeLessThan(1_000);
      expect((await timed(lock(f, { ...patient, mode: 'shared' }))).error).toBeInstanceOf(LockReentryError);

      for (const mode of ['exclusive', 'shared'] as const) {
        const inner = await withLock(f, { ...patient, mode, reentrant: true }, async (l) => l);
        expect(inner).toBe(outer);
        outer.assertHeld();
        const status = await lockStatus(f);
        expect(status.exclusive?.epoch).toBe(outer.fencingToken);
        expect(status.exclusive?.free).toBeUndefined();
      }
    });
    expect(await isLocked(f)).toBe(false);
  });

  it('other locks in the scope, other scopes and work left running after the scope are not affected', async () => {
    const dir = tempDir();
    const f = join(dir, 'data');
    let scopeOver!: () => void;
    const over = new Promise<void>((r) => {
      scopeOver = r;
    });
    let entered!: () => void;
    // Code outside the scope (its continuation was registered out here) is another holder.
    const elsewhere = new Promise<void>((r) => {
      entered = r;
    }).then(() => tryLock(f, { mode: 'shared' }));
    let leftRunning!: Promise<string>;
    await withLock(f, { ...patient, mode: 'shared' }, async () => {
      await withLock(join(dir, 'other'), patient, async () => {}); // a different lock: taken normally
      entered();
      const other = await elsewhere; // shared locks admit both readers
      expect(other?.mode).toBe('shared');
      await other?.release();
      // Started here, runs after the scope: it holds nothing, so it simply takes the lock.
      leftRunning = over.then(() => withLock(f, patient, async (l) => l.mode));
    });
    scopeOver();
    expect(await leftRunning).toBe('exclusive');
  });

  it('a lock released inside the scope can be taken again there, in any mode', async () => {
    const f = join(tempDir(), 'data');
    await withLock(f, { ...patient, mode: 'shared' }, async (l) => {
      await l.release();
      const again = await lock(f, patient);
      expect(again.mode).toBe('exclusive');
      await again.release();
    });
    expect(await isLocked(f)).toBe(false);
  });

  it('a lock lost meanwhile makes withLock throw LockCompromisedError after fn', async () => {
    const f = join(tempDir(), 'data');
    let ran = false;
    await expect(
      withLock(f, patient, async () => {
        await breakLock(f, { force: true });
        ran = true;
      }),
    ).rejects.toBeInstanceOf(LockCompromisedError);
    expect(ran).toBe(true);
  });

  it('rejects a non-boolean reentrant', async () => {
    const f = join(tempDir(), 'data');
    await expect(withLock(f, { reentrant: 'yes' as unknown as boolean }, async () => {})).rejects.toThrow(
      InvalidOptionError,
    );
  });
});
