/**
 * One file transaction's private view. Nothing touches the real files until commit:
 * writes go to staging files (fsynced), deletes and renames are recorded. Reads see the
 * transaction's own changes. At commit the view becomes a {@link Plan}.
 */
import { randomBytes } from 'node:crypto';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { InvalidArgumentError, TransactionClosedError } from '../../core/errors.js';
import { type AtomicWriteData, atomicWriteFile } from '../atomic-write.js';
import { errnoOf } from '../errors.js';
import type { FsAdapter } from '../fs-adapter.js';
import { FsTxConflictError, FsTxOperationError } from './errors.js';
import type { Plan } from './journal.js';

type Source = { kind: 'staged'; file: string } | { kind: 'absent' } | { kind: 'orig'; path: string };

/** What user code gets inside `transaction(async (t) => …)`. Paths are relative to the root. */
export interface FileTx {
  readonly txId: string;
  /** Creates or replaces `path`. */
  write(path: string, data: AtomicWriteData): Promise<void>;
  /** Creates `path`; fails with `E_FS_EXISTS` if it exists. */
  create(path: string, data: AtomicWriteData): Promise<void>;
  /** Deletes `path`; fails with `E_FS_NOT_FOUND` if it does not exist. */
  delete(path: string): Promise<void>;
  /** Renames `from` to `to` (replacing `to` unless `overwrite: false`). */
  rename(from: string, to: string, options?: { overwrite?: boolean }): Promise<void>;
  /** Reads `path` as this transaction sees it; undefined when absent. */
  read(path: string): Promise<Buffer | undefined>;
  exists(path: string): Promise<boolean>;
}

export function newTxId(): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${randomBytes(6).toString('hex')}`;
}

export class FileTxView implements FileTx {
  readonly #view = new Map<string, Source>();
  #staged = 0;
  #closed = false;
  #stagingMade = false;

  constructor(
    readonly txId: string,
    private readonly fs: FsAdapter,
    private readonly root: string,
    private readonly journalDirName: string,
    private readonly reserved: ReadonlyMap<string, string>,
  ) {}

  get stagingRel(): string {
    return `${this.journalDirName}/${this.txId}`;
  }
  get changed(): boolean {
    return this.#view.size > 0;
  }

  close(): void {
    this.#closed = true;
  }

  /** Validates and normalises a user path: relative, inside the root, not in the journal dir. */
  #path(p: unknown, op: string): string {
    if (this.#closed) throw new TransactionClosedError(`fsTransaction: ${op} after the transaction ended`);
    if (typeof p !== 'string' || p.length === 0 || p.includes('\0')) {
      throw new InvalidArgumentError(
        `fsTransaction.${op}: path must be a non-empty string without NUL bytes`,
      );
    }
    if (isAbsolute(p))
      throw new InvalidArgumentError(`fsTransaction.${op}: path must be relative to the root, got ${p}`);
    const n = normalize(p).split(sep).join('/').replace(/\/+$/, '');
    if (n === '.' || n === '..' || n.startsWith('../')) {
      throw new InvalidArgumentError(`fsTransaction.${op}: path must stay inside the root, got ${p}`);
    }
    if (n === this.journalDirName || n.startsWith(`${this.journalDirName}/`)) {
      throw new InvalidArgumentError(
        `fsTransaction.${op}: ${this.journalDirName}/ belongs to txkit's journal`,
      );
    }
    return n;
  }

  #checkReserved(p: string) {
    const gid = this.reserved.get(p);
    if (gid !== undefined) throw new FsTxConflictError(p, gid);
  }

  #source(p: string): Source {
    return this.#view.get(p) ?? { kind: 'orig', path: p };
  }

  async #diskKind(p: string): Promise<'file' | 'dir' | 'other' | undefined> {
    try {
      const st = await this.fs.lstat(join(this.root, p));
      return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other';
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async #existsAsFile(p: string, op: string): Promise<boolean> {
    const s = this.#source(p);
    if (s.kind === 'staged') return true;
    if (s.kind === 'absent') return false;
    const k = await this.#diskKind(s.path);
    if (k === 'dir' || k === 'other') {
      throw new FsTxOperationError('E_FS_NOT_A_FILE', `fsTransaction.${op}: ${p} is not a regular file`, p);
    }
    return k === 'file';
  }

  /** No ancestor of `p` may be a file (now or in this transaction's view). */
  async #checkParents(p: string, op: string) {
    let d = dirname(p);
    while (d !== '.' && d !== '/') {
      const s = this.#view.get(d);
      if (s && s.kind !== 'absent') {
        throw new FsTxOperationError(
          'E_FS_NOT_A_FILE',
          `fsTransaction.${op}: ${d} is a file, not a directory`,
          p,
        );
      }
      if (!s) {
        const k = await this.#diskKind(d);
        if (k === 'file' || k === 'other') {
          throw new FsTxOperationError('E_FS_NOT_A_FILE', `fsTransaction.${op}: ${d} is not a directory`, p);
        }
        if (k === 'dir') return;
      }
      d = dirname(d);
    }
  }

  async write(path: string, data: AtomicWriteData): Promise<void> {
    const p = this.#path(path, 'write');
    this.#checkReserved(p);
    await this.#checkParents(p, 'write');
    await this.#existsAsFile(p, 'write');
    await this.#stage(p, data);
  }

  async create(path: string, data: AtomicWriteData): Promise<void> {
    const p = this.#path(path, 'create');
    this.#checkReserved(p);
    await this.#checkParents(p, 'create');
    if (await this.#existsAsFile(p, 'create')) {
      throw new FsTxOperationError('E_FS_EXISTS', `fsTransaction.create: ${p} already exists`, p);
    }
    await this.#stage(p, data);
  }

  async #stage(p: string, data: AtomicWriteData) {
    const staging = join(this.root, this.stagingRel);
    if (!this.#stagingMade) {
      await this.fs.mkdir(staging, { recursive: true });
      this.#stagingMade = true;
    }
    const file = `s${++this.#staged}`;
    // The staged file is fsynced now; the staging directory is fsynced before COMMIT.
    await atomicWriteFile(join(staging, file), data, { fs: this.fs, durability: 'data' });
    this.#view.set(p, { kind: 'staged', file: `${this.stagingRel}/${file}` });
  }

  async delete(path: string): Promise<void> {
    const p = this.#path(path, 'delete');
    this.#checkReserved(p);
    if (!(await this.#existsAsFile(p, 'delete'))) {
      throw new FsTxOperationError('E_FS_NOT_FOUND', `fsTransaction.delete: ${p} does not exist`, p);
    }
    this.#view.set(p, { kind: 'absent' });
  }

  async rename(from: string, to: string, options: { overwrite?: boolean } = {}): Promise<void> {
    const a = this.#path(from, 'rename');
    const b = this.#path(to, 'rename');
    this.#checkReserved(a);
    this.#checkReserved(b);
    if (!(await this.#existsAsFile(a, 'rename'))) {
      throw new FsTxOperationError('E_FS_NOT_FOUND', `fsTransaction.rename: ${a} does not exist`, a);
    }
    if (a === b) return;
    await this.#checkParents(b, 'rename');
    if ((await this.#existsAsFile(b, 'rename')) && options.overwrite === false) {
      throw new FsTxOperationError(
        'E_FS_EXISTS',
        `fsTransaction.rename: ${b} exists and overwrite is false`,
        b,
      );
    }
    this.#view.set(b, this.#source(a));
    this.#view.set(a, { kind: 'absent' });
  }

  async read(path: string): Promise<Buffer | undefined> {
    const p = this.#path(path, 'read');
    const s = this.#source(p);
    if (s.kind === 'absent') return undefined;
    try {
      return await this.fs.readFile(join(this.root, s.kind === 'staged' ? s.file : s.path));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  async exists(path: string): Promise<boolean> {
    return this.#existsAsFile(this.#path(path, 'exists'), 'exists');
  }

  /** The moves that make the view real. */
  async plan(): Promise<Plan> {
    const plan: Plan = { stash: [], place: [], remove: [] };
    let n = 0;
    for (const [p, s] of this.#view) {
      if (s.kind === 'staged') plan.place.push({ from: s.file, to: p });
      else if (s.kind === 'orig' && s.path !== p) {
        const stash = `${this.stagingRel}/o${++n}`;
        plan.stash.push({ from: s.path, to: stash });
        plan.place.push({ from: stash, to: p });
      } else if (s.kind === 'absent' && (await this.#diskKind(p)) === 'file') plan.remove.push(p);
    }
    return plan;
  }
}
