/**
 * Versioned backups with checksums, and atomic restore. Each source file gets its own
 * directory `<backupDir>/<sha1(realpath)[:12]>/`, so equal basenames never collide. A
 * backup is `<base>.v<version>.<YYYYMMDD_HHMMSS_mmm>.bak` plus a `.meta` JSON with its
 * sha256; versions come from the metas, never from parsing file names.
 */
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { InvalidArgumentError, InvalidOptionError, TxkitError } from '../core/errors.js';
import { atomicWriteFile, atomicWriteJson } from './atomic-write.js';
import { errnoOf } from './errors.js';
import { type FsAdapter, nodeFs } from './fs-adapter.js';
import { sumOf } from './integrity.js';
import { lock } from './lock.js';
import { mkdirDurable } from './mkdir-durable.js';

export interface BackupMeta {
  original_path: string;
  backup_path: string;
  timestamp: string;
  size: number;
  version: number;
  sha256: string;
  kind: 'backup' | 'pre-restore';
}

export type BackupCheck =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'size-mismatch' | 'checksum-mismatch' | 'unverified' };

/** A backup failed verification and `force` was not given. */
export class BackupCorruptError extends TxkitError {
  constructor(message: string) {
    super('E_BACKUP_CORRUPT', message);
  }
}

export interface BackupManagerOptions {
  /** Default `backups` (resolved against the current directory once, at construction). */
  backupDir?: string;
  /** Versions kept per source. Default 10. */
  maxVersions?: number;
  fs?: FsAdapter;
}

const stamp = (d: Date) =>
  d.toISOString().replace(/[-:]/g, '').replace('T', '_').replace('.', '_').slice(0, 19);

export class BackupManager {
  readonly backupDir: string;
  readonly maxVersions: number;
  readonly #fs: FsAdapter;

  constructor(options: BackupManagerOptions = {}) {
    this.backupDir = resolve(options.backupDir ?? 'backups');
    const max = options.maxVersions ?? 10;
    if (!Number.isInteger(max) || max < 1)
      throw new InvalidOptionError('BackupManager: maxVersions must be an integer >= 1');
    this.maxVersions = max;
    this.#fs = options.fs ?? nodeFs;
  }

  async #dirFor(source: string): Promise<{ dir: string; real: string }> {
    let real = resolve(source);
    try {
      real = await this.#fs.realpath(real);
    } catch {}
    return { dir: join(this.backupDir, createHash('sha1').update(real).digest('hex').slice(0, 12)), real };
  }

  /** All backups of `source`, newest version first. */
  async list(source: string): Promise<BackupMeta[]> {
    const { dir } = await this.#dirFor(source);
    let names: string[];
    try {
      names = await this.#fs.readdir(dir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return [];
      throw err;
    }
    const metas: BackupMeta[] = [];
    for (const n of names) {
      if (!n.endsWith('.bak.meta')) continue;
      try {
        metas.push(JSON.parse((await this.#fs.readFile(join(dir, n))).toString('utf8')) as BackupMeta);
      } catch {}
    }
    return metas.sort((a, b) => b.version - a.version);
  }

  /**
   * Backs up `source` under a shared lock (a consistent copy). Skips (returns undefined)
   * when the content equals the newest backup, unless `force`. Then prunes.
   */
  async create(
    source: string,
    options: { force?: boolean; kind?: BackupMeta['kind'] } = {},
  ): Promise<BackupMeta | undefined> {
    const { dir, real } = await this.#dirFor(source);
    const l = await lock(source, { mode: 'shared', fs: this.#fs });
    let data: Buffer;
    try {
      data = await this.#fs.readFile(real);
    } catch (err) {
      await l.release();
      if (errnoOf(err) === 'ENOENT')
        throw new InvalidArgumentError(`BackupManager.create: ${source} does not exist`);
      throw err;
    }
    await l.release();
    const sum = sumOf(data);
    const existing = await this.list(source);
    if (!options.force && existing[0]?.sha256 === sum.sha256 && existing[0].size === sum.size)
      return undefined;
    const meta = await this.#writeVersion(
      dir,
      real,
      data,
      sum,
      (existing[0]?.version ?? 0) + 1,
      options.kind ?? 'backup',
    );
    await this.prune(source);
    return meta;
  }

  /** Writes one version: the data, then its meta (so a meta always has its data). */
  async #writeVersion(
    dir: string,
    real: string,
    data: Buffer,
    sum: ReturnType<typeof sumOf>,
    version: number,
    kind: BackupMeta['kind'],
  ): Promise<BackupMeta> {
    await mkdirDurable(this.#fs, dir);
    const now = new Date();
    const path = join(dir, `${basename(real)}.v${version}.${stamp(now)}.bak`);
    await atomicWriteFile(path, data, { fs: this.#fs });
    const meta: BackupMeta = {
      original_path: real,
      backup_path: path,
      timestamp: now.toISOString(),
      size: sum.size,
      version,
      sha256: sum.sha256,
      kind,
    };
    await atomicWriteJson(`${path}.meta`, meta, { fs: this.#fs });
    return meta;
  }

  /** Checks a backup's size and sha256 against its meta. */
  async verify(meta: BackupMeta): Promise<BackupCheck> {
    let data: Buffer;
    try {
      data = await this.#fs.readFile(meta.backup_path);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return { ok: false, reason: 'missing' };
      throw err;
    }
    const sum = sumOf(data);
    if (sum.size !== meta.size) return { ok: false, reason: 'size-mismatch' };
    if (sum.sha256 !== meta.sha256) return { ok: false, reason: 'checksum-mismatch' };
    return { ok: true };
  }

  /**
   * Restores `source` atomically from a backup: `version` if given, otherwise the newest
   * backup that verifies. The current file is backed up first (`kind: 'pre-restore'`).
   * A backup that fails verification is refused unless `force`.
   */
  async restore(source: string, options: { version?: number; force?: boolean } = {}): Promise<BackupMeta> {
    const all = await this.list(source);
    let chosen: BackupMeta | undefined;
    if (options.version !== undefined) {
      chosen = all.find((m) => m.version === options.version);
      if (!chosen)
        throw new InvalidArgumentError(
          `BackupManager.restore: no backup version ${options.version} of ${source}`,
        );
      const check = await this.verify(chosen);
      if (!check.ok && !options.force) {
        throw new BackupCorruptError(
          `backup v${chosen.version} of ${source} failed verification (${check.reason}); use force to restore anyway`,
        );
      }
    } else {
      for (const m of all.filter((x) => x.kind === 'backup')) {
        if ((await this.verify(m)).ok) {
          chosen = m;
          break;
        }
      }
      if (!chosen) throw new BackupCorruptError(`no verified backup of ${source}`);
    }
    const data = await this.#fs.readFile(chosen.backup_path);
    const l = await lock(source, { fs: this.#fs });
    try {
      try {
        await this.#fs.stat(source);
        await this.#preRestore(source);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
      }
      l.assertHeld();
      await atomicWriteFile(source, data, { fs: this.#fs });
    } finally {
      await l.release();
    }
    await this.prune(source);
    return chosen;
  }

  async #preRestore(source: string) {
    // Inline (we hold the exclusive lock, so create()'s shared lock would wait on us).
    const { dir, real } = await this.#dirFor(source);
    const data = await this.#fs.readFile(real);
    const version = ((await this.list(source))[0]?.version ?? 0) + 1;
    await this.#writeVersion(dir, real, data, sumOf(data), version, 'pre-restore');
  }

  /** Keeps the newest `maxVersions` by version; deletes meta first, then data. */
  async prune(source: string): Promise<number> {
    const all = await this.list(source);
    let removed = 0;
    for (const m of all.slice(this.maxVersions)) {
      await this.#fs.unlink(`${m.backup_path}.meta`).catch(() => {});
      await this.#fs.unlink(m.backup_path).catch(() => {});
      removed++;
    }
    return removed;
  }
}
