import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupCorruptError, BackupManager } from '../../src/fs/backup.js';
import { crashingFs } from '../../src/fs/fault-injection.js';
import {
  getFileInfo,
  manifestPath,
  reconcileManifest,
  VersionConflictError,
  verifyFile,
  writeIfVersion,
  writeWithManifest,
} from '../../src/fs/integrity.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();

describe('integrity manifest', () => {
  it('versions each write, verifies, and detects corruption', async () => {
    const f = join(tempDir(), 'ledger.csv');
    expect(await verifyFile(f)).toEqual({ ok: false, reason: 'missing' });
    expect(await writeWithManifest(f, 'a,1\n')).toBe(1); // the first write works (the seed's failed)
    expect(await writeWithManifest(f, 'a,1\nb,2\n')).toBe(2);
    expect(await verifyFile(f)).toEqual({ ok: true, version: 2, matched: 'current' });
    writeFileSync(f, 'a,1\nb,3\n');
    expect(await verifyFile(f)).toEqual({ ok: false, reason: 'checksum-mismatch' });
    writeFileSync(f, 'x');
    expect(await verifyFile(f)).toEqual({ ok: false, reason: 'size-mismatch' });
    writeFileSync(manifestPath(f), '{oops');
    expect(await verifyFile(f)).toEqual({ ok: false, reason: 'manifest-corrupt' });
    const g = join(tempDir(), 'plain');
    writeFileSync(g, 'x');
    expect(await verifyFile(g)).toMatchObject({ ok: true, matched: 'no-manifest' });
    expect(await verifyFile(g, { requireManifest: true })).toEqual({ ok: false, reason: 'no-manifest' });
  });

  it('writeIfVersion refuses a stale version', async () => {
    const f = join(tempDir(), 'doc');
    await writeWithManifest(f, 'v1');
    await expect(writeIfVersion(f, 0, 'x')).rejects.toBeInstanceOf(VersionConflictError);
    expect(await writeIfVersion(f, 1, 'v2')).toBe(2);
    const info = await getFileInfo(f);
    expect(info).toMatchObject({ size: 2, version: 2, hasManifest: true });
  });

  it('a crash at any step never leaves data and manifest disagreeing', async () => {
    const probeDir = tempDir();
    const probe = crashingFs(Number.MAX_SAFE_INTEGER);
    await writeWithManifest(join(probeDir, 'f'), 'old');
    const before = probe.count;
    await writeWithManifest(join(probeDir, 'f'), 'new', { fs: probe });
    const total = probe.count - before;
    for (let n = 0; n < total; n++) {
      const dir = tempDir();
      const f = join(dir, 'f');
      await writeWithManifest(f, 'old content');
      await writeWithManifest(f, 'new content!', { fs: crashingFs(n) }).catch(() => {});
      const r = await verifyFile(f);
      expect(r.ok).toBe(true);
      // The crashed writer's lock names this (live) pid; a real dead process's lock is taken over.
      rmSync(`${f}.lock`, { recursive: true, force: true });
      const settled = await reconcileManifest(f);
      expect(settled.ok).toBe(true);
      const m = JSON.parse(readFileSync(manifestPath(f), 'utf8'));
      expect(m.pending).toBeUndefined();
      expect(['old content', 'new content!']).toContain(readFileSync(f, 'utf8'));
    }
  }, 60_000);
});

describe('BackupManager', () => {
  it('keeps versions (deduped), restores atomically, keeps at most maxVersions', async () => {
    const dir = tempDir();
    const f = join(dir, 'config.json'); // an extension: the seed gave every such backup version 1
    const b = new BackupManager({ backupDir: join(dir, 'backups'), maxVersions: 3 });
    await expect(b.create(f)).rejects.toThrow(/does not exist/);
    for (let i = 1; i <= 5; i++) {
      writeFileSync(f, `{"v":${i}}`);
      expect((await b.create(f))?.version).toBe(i);
    }
    expect(await b.create(f)).toBeUndefined(); // identical content: skipped
    const list = await b.list(f);
    expect(list.map((m) => m.version)).toEqual([5, 4, 3]);
    await b.restore(f, { version: 3 });
    expect(readFileSync(f, 'utf8')).toBe('{"v":3}');
    const after = await b.list(f);
    expect(after[0]).toMatchObject({ version: 6, kind: 'pre-restore' });
    expect(after).toHaveLength(3);
  });

  it('refuses a corrupt backup unless forced, and falls back to an older verified one', async () => {
    const dir = tempDir();
    const f = join(dir, 'data.txt');
    const b = new BackupManager({ backupDir: join(dir, 'backups') });
    writeFileSync(f, 'one');
    await b.create(f);
    writeFileSync(f, 'two');
    const m2 = (await b.create(f))!;
    writeFileSync(m2.backup_path, 'tw0'); // bit rot
    expect(await b.verify(m2)).toEqual({ ok: false, reason: 'checksum-mismatch' });
    await expect(b.restore(f, { version: 2 })).rejects.toBeInstanceOf(BackupCorruptError);
    writeFileSync(f, 'three');
    const used = await b.restore(f);
    expect(used.version).toBe(1);
    expect(readFileSync(f, 'utf8')).toBe('one');
    await b.restore(f, { version: 2, force: true });
    expect(readFileSync(f, 'utf8')).toBe('tw0');
  });

  it('backups of files with the same name in different directories do not collide', async () => {
    const dir = tempDir();
    const b = new BackupManager({ backupDir: join(dir, 'backups') });
    for (const sub of ['a', 'b']) {
      mkdirSync(join(dir, sub));
      writeFileSync(join(dir, sub, 'same.txt'), sub);
      await b.create(join(dir, sub, 'same.txt'));
    }
    expect(readdirSync(join(dir, 'backups'))).toHaveLength(2);
    expect((await b.list(join(dir, 'a', 'same.txt')))[0]?.version).toBe(1);
    expect(() => new BackupManager({ maxVersions: 0 })).toThrow(/maxVersions must be an integer >= 1/);
  });
});
