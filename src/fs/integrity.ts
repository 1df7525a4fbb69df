/**
 * Checksum manifests that cannot drift from the data on a crash. The manifest
 * `<file>.manifest.json` is updated in two phases around the data write:
 *   1. manifest gets `pending` (the new checksum) — atomically;
 *   2. the data is replaced — atomically;
 *   3. manifest gets `current = pending` — atomically.
 * A crash anywhere leaves data matching `current` or `pending`, which `verifyFile` accepts
 * (and `reconcileManifest` settles). Plain checksums catch accidents, not tampering.
 */
import { createHash } from 'node:crypto';
import { TxkitError } from '../core/errors.js';
import { atomicWriteFile, atomicWriteJson } from './atomic-write.js';
import { errnoOf } from './errors.js';
import { type FsAdapter, nodeFs } from './fs-adapter.js';
import { lock } from './lock.js';

export interface ContentSum {
  sha256: string;
  size: number;
}

export interface Manifest {
  /** Increments with every managed write. */
  version: number;
  current: ContentSum | null;
  pending?: ContentSum;
}

export type VerifyResult =
  | { ok: true; version: number; matched: 'current' | 'pending' }
  | { ok: true; version: undefined; matched: 'no-manifest' }
  | {
      ok: false;
      reason: 'missing' | 'size-mismatch' | 'checksum-mismatch' | 'no-manifest' | 'manifest-corrupt';
    };

/** `writeIfVersion` found another version on disk. */
export class VersionConflictError extends TxkitError {
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super('E_VERSION_CONFLICT', `expected version ${expected}, found ${actual}`, { retryable: true });
  }
}

const CHUNK = 64 * 1024;
export const manifestPath = (path: string) => `${path}.manifest.json`;

export function sumOf(data: Uint8Array): ContentSum {
  return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
}

/** SHA-256 and size of a file, read in 64 KiB chunks. */
export async function checksumFile(path: string, fs: FsAdapter = nodeFs): Promise<ContentSum> {
  const f = await fs.open(path, 'r');
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    for (;;) {
      const n = await f.read(buf, 0, CHUNK, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
    return { sha256: h.digest('hex'), size: pos };
  } finally {
    await f.close();
  }
}

export async function readManifest(
  path: string,
  fs: FsAdapter = nodeFs,
): Promise<Manifest | undefined | 'corrupt'> {
  try {
    const m = JSON.parse((await fs.readFile(manifestPath(path))).toString('utf8')) as Manifest;
    return typeof m.version === 'number' ? m : 'corrupt';
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    return 'corrupt';
  }
}

const same = (a: ContentSum | null | undefined, b: ContentSum) =>
  !!a && a.sha256 === b.sha256 && a.size === b.size;

/**
 * Replaces `path` with `data` and its manifest, crash-consistently, under the file's lock.
 * Returns the new version.
 *
 * @example
 * const v = await writeWithManifest('ledger.csv', rows);
 * const check = await verifyFile('ledger.csv'); // { ok: true, version: v, matched: 'current' }
 */
export async function writeWithManifest(
  path: string,
  data: string | Uint8Array,
  options: { fs?: FsAdapter; expectedVersion?: number } = {},
): Promise<number> {
  const fs = options.fs ?? nodeFs;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const l = await lock(path, { fs });
  try {
    const m = await readManifest(path, fs);
    const prev: Manifest = m && m !== 'corrupt' ? m : { version: 0, current: null };
    if (options.expectedVersion !== undefined && prev.version !== options.expectedVersion) {
      throw new VersionConflictError(options.expectedVersion, prev.version);
    }
    const next = sumOf(bytes);
    await atomicWriteJson(
      manifestPath(path),
      { version: prev.version, current: prev.current, pending: next },
      { fs },
    );
    l.assertHeld();
    await atomicWriteFile(path, bytes, { fs });
    const version = prev.version + 1;
    await atomicWriteJson(manifestPath(path), { version, current: next }, { fs });
    return version;
  } finally {
    await l.release();
  }
}

/** Optimistic concurrency across processes: writes only if the manifest version is `expected`. */
export function writeIfVersion(
  path: string,
  expected: number,
  data: string | Uint8Array,
  options: { fs?: FsAdapter } = {},
) {
  return writeWithManifest(path, data, { ...options, expectedVersion: expected });
}

/** Checks `path` against its manifest. */
export async function verifyFile(
  path: string,
  options: { fs?: FsAdapter; requireManifest?: boolean } = {},
): Promise<VerifyResult> {
  const fs = options.fs ?? nodeFs;
  const m = await readManifest(path, fs);
  let sum: ContentSum;
  try {
    sum = await checksumFile(path, fs);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { ok: false, reason: 'missing' };
    throw err;
  }
  if (m === 'corrupt') return { ok: false, reason: 'manifest-corrupt' };
  if (!m)
    return options.requireManifest
      ? { ok: false, reason: 'no-manifest' }
      : { ok: true, version: undefined, matched: 'no-manifest' };
  if (same(m.current, sum)) return { ok: true, version: m.version, matched: 'current' };
  if (same(m.pending, sum)) return { ok: true, version: m.version + 1, matched: 'pending' };
  const sizes = [m.current?.size, m.pending?.size].filter((s) => s !== undefined);
  return { ok: false, reason: sizes.includes(sum.size) ? 'checksum-mismatch' : 'size-mismatch' };
}

/** After a crash between steps: settles the manifest to whichever checksum the data has. */
export async function reconcileManifest(
  path: string,
  options: { fs?: FsAdapter } = {},
): Promise<VerifyResult> {
  const fs = options.fs ?? nodeFs;
  const l = await lock(path, { fs });
  try {
    const r = await verifyFile(path, { fs });
    const m = await readManifest(path, fs);
    if (r.ok && m && m !== 'corrupt' && (m.pending || r.matched === 'pending')) {
      const current = r.matched === 'pending' ? m.pending! : m.current;
      await atomicWriteJson(manifestPath(path), { version: r.version, current }, { fs });
    }
    return r;
  } finally {
    await l.release();
  }
}

/** `{path, size, mtime, version, hasManifest, checksum}` (the seed's get_file_info). */
export async function getFileInfo(path: string, options: { fs?: FsAdapter } = {}) {
  const fs = options.fs ?? nodeFs;
  const st = await fs.stat(path);
  const m = await readManifest(path, fs);
  const manifest = m && m !== 'corrupt' ? m : undefined;
  return {
    path,
    size: st.size,
    mtime: st.mtime,
    version: manifest?.version,
    hasManifest: m !== undefined,
    checksum: (await checksumFile(path, fs)).sha256,
  };
}
