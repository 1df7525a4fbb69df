/**
 * Multi-file transactions on a directory tree: all of a transaction's writes, creates,
 * deletes and renames become visible together, or none do, even across a crash.
 *
 * Protocol (journal and staging in `<root>/.fstx/`, so on the same filesystem):
 * 1. During the transaction nothing real changes: data goes to fsynced staging files.
 * 2. Commit point: the journal `<txId>.journal` with the full plan is created and fsynced
 *    (and its directory). Before it exists, recovery just deletes the staging files.
 * 3. Apply (idempotent, so recovery can redo it): stash originals that are rename sources,
 *    record STASHED, rename staged files onto targets, unlink deletions, fsync directories.
 * 4. Remove staging and the journal.
 * A `prepare(gid)` writes the plan as PREPARED instead; `commitPrepared` / `rollbackPrepared`
 * decide later (the shape of the Resource SPI's two-phase methods).
 */
import type { Dirent } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, TransactionClosedError } from '../../core/errors.js';
import type { PreparedInfo } from '../../core/resource.js';
import { classifyFsError, errnoOf } from '../errors.js';
import { fsEvents } from '../events.js';
import { type FsAdapter, nodeFs } from '../fs-adapter.js';
import { type LockHandle, lock } from '../lock.js';
import { mkdirDurable } from '../mkdir-durable.js';
import { FsTxRecoveryError } from './errors.js';
import {
  appendJournal,
  createJournal,
  JOURNAL_SUFFIX,
  type JournalRecord,
  type Plan,
  readJournal,
} from './journal.js';
import { type FileTx, FileTxView, newTxId } from './transaction.js';

export interface FsTransactionOptions {
  /** Name of the journal directory under the root. Default `.fstx`. */
  journalDir?: string;
  /** How long to wait for the root lock. Default 10 000 ms. */
  lockTimeoutMs?: number;
  fs?: FsAdapter;
}

export interface RecoveryReport {
  /** Committed transactions finished by recovery. */
  forward: string[];
  /** Unfinished transactions undone (their staging deleted). */
  backward: string[];
  /** Prepared transactions left waiting for a decision. */
  prepared: string[];
}

/** A transaction begun with `begin()`: commit, roll back, or prepare it yourself. */
export interface FileTxHandle extends FileTx {
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** Makes the changes durable but undecided under `gid`, and ends this handle. */
  prepare(gid: string): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface PreparedEntry {
  txId: string;
  gid: string;
  plan: Plan;
  at: string;
}

const planPaths = (plan: Plan) => [
  ...plan.place.map((p) => p.to),
  ...plan.remove,
  ...plan.stash.map((s) => s.from),
];

/**
 * Opens a transaction manager on `root`. Recovery runs before the first transaction.
 *
 * @example
 * const files = fsTransaction('data');
 * await files.transaction(async (t) => {
 *   await t.write('orders/42.json', JSON.stringify(order));
 *   await t.rename('inbox/42.json', 'done/42.json');
 * });
 */
export function fsTransaction(root: string, options: FsTransactionOptions = {}): FsTransactionManager {
  return new FsTransactionManager(root, options);
}

export class FsTransactionManager {
  readonly root: string;
  readonly #fs: FsAdapter;
  readonly #jdirName: string;
  readonly #jdir: string;
  readonly #lockTimeout: number;
  #recovered: Promise<RecoveryReport> | undefined;

  constructor(root: string, o: FsTransactionOptions = {}) {
    if (typeof root !== 'string' || root.length === 0)
      throw new InvalidArgumentError('fsTransaction: root must be a non-empty string');
    const j = o.journalDir ?? '.fstx';
    if (!/^[A-Za-z0-9._-]+$/.test(j) || j === '.' || j === '..') {
      throw new InvalidArgumentError(
        'fsTransaction: journalDir must be a single directory name of letters, digits, ., _ or -',
      );
    }
    this.root = resolve(root);
    this.#fs = o.fs ?? nodeFs;
    this.#jdirName = j;
    this.#jdir = join(this.root, j);
    this.#lockTimeout = o.lockTimeoutMs ?? 10_000;
  }

  async #lockRoot(): Promise<LockHandle> {
    await mkdirDurable(this.#fs, this.#jdir); // a journal in a directory that vanishes is no journal
    return lock(join(this.#jdir, 'ROOT'), {
      timeoutMs: this.#lockTimeout,
      fs: this.#fs,
      label: 'fsTransaction',
    });
  }

  /**
   * Finishes committed transactions and undoes unfinished ones. Runs once automatically
   * before the first transaction; call it to get the report.
   */
  recover(): Promise<RecoveryReport> {
    this.#recovered ??= (async () => {
      const l = await this.#lockRoot();
      try {
        return await this.#recoverLocked();
      } finally {
        await l.release().catch(() => {});
      }
    })();
    const p = this.#recovered;
    p.catch(() => {
      if (this.#recovered === p) this.#recovered = undefined; // let a later call retry
    });
    return p;
  }

  /**
   * What recovery would do, without doing it (nor taking the lock): committed transactions
   * to finish, unfinished ones and journal-less staging directories to undo, prepared ones
   * to leave. `txkit fs recover --dry-run` prints it.
   */
  async planRecovery(): Promise<RecoveryReport> {
    return (await this.#plan()).report;
  }

  async #plan(): Promise<{ report: RecoveryReport; committed: Map<string, CommittedState> }> {
    const report: RecoveryReport = { forward: [], backward: [], prepared: [] };
    const committed = new Map<string, CommittedState>();
    let entries: Dirent[];
    try {
      entries = await this.#fs.readdirTypes(this.#jdir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return { report, committed };
      throw err;
    }
    const journals = new Set(
      entries
        .filter((d) => d.name.endsWith(JOURNAL_SUFFIX))
        .map((d) => d.name.slice(0, -JOURNAL_SUFFIX.length)),
    );
    for (const txId of journals) {
      const state = stateOf((await readJournal(this.#fs, this.#jdir, txId)) ?? []);
      if (state.kind === 'committed') {
        committed.set(txId, state);
        report.forward.push(txId);
      } else if (state.kind === 'prepared') report.prepared.push(txId);
      else report.backward.push(txId);
    }
    // Staging directories without a journal: transactions that never reached commit.
    for (const d of entries) {
      if (d.isDirectory() && !journals.has(d.name) && !d.name.endsWith('.lock')) report.backward.push(d.name);
    }
    return { report, committed };
  }

  async #recoverLocked(): Promise<RecoveryReport> {
    const { report, committed } = await this.#plan();
    for (const [txId, state] of committed) {
      await this.#apply(txId, state.plan, state.stashed);
      await this.#cleanup(txId);
      fsEvents.emit('fstx-recovered', { root: this.root, txId, direction: 'forward' });
    }
    for (const txId of report.backward) {
      // An unfinished journal goes with its staging; a journal-less staging directory alone.
      await this.#cleanup(txId);
      fsEvents.emit('fstx-recovered', { root: this.root, txId, direction: 'backward' });
    }
    return report;
  }

  /** Paths reserved by prepared transactions (path → gid). */
  async #reserved(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const p of await this.#listPreparedEntries())
      for (const path of planPaths(p.plan)) out.set(path, p.gid);
    return out;
  }

  async #listPreparedEntries(): Promise<PreparedEntry[]> {
    const out: PreparedEntry[] = [];
    let names: string[];
    try {
      names = await this.#fs.readdir(this.#jdir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return out;
      throw err;
    }
    for (const n of names) {
      if (!n.endsWith(JOURNAL_SUFFIX)) continue;
      const txId = n.slice(0, -JOURNAL_SUFFIX.length);
      const recs = (await readJournal(this.#fs, this.#jdir, txId)) ?? [];
      const first = recs[0];
      if (first?.t === 'PREPARED' && stateOf(recs).kind === 'prepared') {
        out.push({ txId, gid: first.gid, plan: first.plan, at: first.at });
      }
    }
    return out;
  }

  /**
   * Runs `fn` as one transaction: resolves once every change is durable and visible; if
   * `fn` throws, nothing changes and the error is rethrown.
   */
  async transaction<T>(fn: (t: FileTx) => Promise<T>): Promise<T> {
    const h = await this.begin();
    let result: T;
    try {
      result = await fn(h);
    } catch (err) {
      await h.rollback().catch(() => {});
      throw err;
    }
    await h.commit();
    return result;
  }

  /** Begins a transaction that the caller commits, rolls back or prepares. Holds the root lock. */
  async begin(): Promise<FileTxHandle> {
    await this.recover();
    const l = await this.#lockRoot();
    let view: FileTxView;
    try {
      // A commit whose apply failed (here or in another process) is finished first, so no
      // transaction ever starts from a half-applied state.
      await this.#recoverLocked();
      view = new FileTxView(newTxId(), this.#fs, this.root, this.#jdirName, await this.#reserved());
    } catch (err) {
      await l.release().catch(() => {});
      throw err;
    }
    let ended = false;
    const end = async (what: string, work: () => Promise<void>) => {
      if (ended) throw new TransactionClosedError(`fsTransaction: ${what} after the transaction ended`);
      ended = true;
      view.close();
      try {
        await work();
      } finally {
        await l.release().catch(() => {});
      }
    };
    const rollback = () => end('rollback', () => this.#cleanup(view.txId));
    const handle: FileTxHandle = {
      txId: view.txId,
      write: (path, data) => view.write(path, data),
      create: (path, data) => view.create(path, data),
      delete: (path) => view.delete(path),
      rename: (from, to, o) => view.rename(from, to, o),
      read: (path) => view.read(path),
      exists: (path) => view.exists(path),
      commit: () =>
        end('commit', async () => {
          l.assertHeld();
          if (!view.changed) return this.#cleanup(view.txId);
          try {
            const plan = await view.plan();
            await this.#syncStaging(view.txId);
            await createJournal(this.#fs, this.#jdir, view.txId, {
              t: 'COMMIT',
              txId: view.txId,
              plan,
              at: now(),
            });
            await this.#finish(view.txId, plan, false);
          } catch (err) {
            // Before the journal is durable nothing is visible: undo the staging. (If the
            // journal write failed half-way, recovery reads its CRC and treats it the same.)
            if (!(err instanceof FsTxRecoveryError)) await this.#cleanup(view.txId).catch(() => {});
            throw classifyFsError(err, { op: 'fsTransaction.commit', path: this.root });
          }
        }),
      rollback,
      prepare: (gid: string) =>
        end('prepare', async () => {
          if (typeof gid !== 'string' || gid.length === 0 || gid.length > 200) {
            throw new InvalidArgumentError(
              'fsTransaction.prepare: gid must be a non-empty string of at most 200 characters',
            );
          }
          if ((await this.#listPreparedEntries()).some((p) => p.gid === gid)) {
            throw new InvalidArgumentError(`fsTransaction.prepare: gid ${gid} is already prepared`);
          }
          const plan = await view.plan();
          await this.#syncStaging(view.txId);
          await createJournal(this.#fs, this.#jdir, view.txId, {
            t: 'PREPARED',
            txId: view.txId,
            gid,
            plan,
            at: now(),
          });
        }),
      [Symbol.asyncDispose]: async () => {
        if (!ended) await rollback();
      },
    };
    return handle;
  }

  async #syncStaging(txId: string) {
    try {
      await this.#fs.syncDir(join(this.#jdir, txId));
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err; // no staging dir: nothing was written
    }
  }

  /** After the commit point: apply, then clean up. A failure here leaves the journal for recovery. */
  async #finish(txId: string, plan: Plan, stashed: boolean) {
    try {
      await this.#apply(txId, plan, stashed);
      await this.#cleanup(txId);
    } catch (err) {
      throw new FsTxRecoveryError(
        `fsTransaction: transaction ${txId} is committed but applying it failed; it stays journaled and the next recover() finishes it`,
        { cause: classifyFsError(err, { op: 'fsTransaction.commit', path: this.root }) },
      );
    }
  }

  /** Idempotent redo of a committed plan. */
  async #apply(txId: string, plan: Plan, stashed: boolean) {
    const fs = this.#fs;
    const abs = (p: string) => join(this.root, p);
    const dirs = new Set<string>();
    if (!stashed && plan.stash.length > 0) {
      for (const s of plan.stash) {
        if (await exists(fs, abs(s.to))) continue;
        await mkdirDurable(fs, dirname(abs(s.to)));
        await fs.rename(abs(s.from), abs(s.to));
        dirs.add(dirname(abs(s.from)));
      }
      // Destination before source: a power loss in between may leave a file under both
      // names, never under neither.
      await fs.syncDir(join(this.#jdir, txId));
      for (const d of dirs) await fs.syncDir(d);
      dirs.clear();
      await appendJournal(fs, this.#jdir, txId, { t: 'STASHED' });
    }
    for (const p of plan.place) {
      if (!(await exists(fs, abs(p.from)))) continue; // done before a crash
      await mkdirDurable(fs, dirname(abs(p.to)));
      await fs.rename(abs(p.from), abs(p.to));
      dirs.add(dirname(abs(p.to)));
    }
    for (const r of plan.remove) {
      await fs.unlink(abs(r)).catch((err) => {
        if (errnoOf(err) !== 'ENOENT') throw err;
      });
      dirs.add(dirname(abs(r)));
    }
    for (const s of plan.stash) dirs.add(dirname(abs(s.from)));
    for (const d of dirs)
      await fs.syncDir(d).catch((err) => {
        if (errnoOf(err) !== 'ENOENT') throw err;
      });
  }

  /** Removes staging, then the journal (the journal last: it is what recovery looks at). */
  async #cleanup(txId: string) {
    await this.#fs.rm(join(this.#jdir, txId), { recursive: true, force: true });
    await this.#fs.unlink(join(this.#jdir, txId + JOURNAL_SUFFIX)).catch((err) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
    });
    await this.#fs.syncDir(this.#jdir);
  }

  /** Prepared transactions whose gid starts with `prefix` (Resource SPI shape). */
  async listPrepared(prefix = ''): Promise<PreparedInfo[]> {
    await this.recover();
    const t = Date.now();
    return (await this.#listPreparedEntries())
      .filter((p) => p.gid.startsWith(prefix))
      .map((p) => ({ gid: p.gid, preparedAt: new Date(p.at), ageMs: t - Date.parse(p.at), owner: p.txId }));
  }

  async #findPrepared(gid: string): Promise<PreparedEntry> {
    const p = (await this.#listPreparedEntries()).find((e) => e.gid === gid);
    if (!p) throw new InvalidArgumentError(`fsTransaction: no prepared transaction with gid ${gid}`);
    return p;
  }

  /** Commits a prepared transaction: its changes become visible. */
  async commitPrepared(gid: string): Promise<void> {
    await this.recover();
    const l = await this.#lockRoot();
    try {
      const p = await this.#findPrepared(gid);
      await appendJournal(this.#fs, this.#jdir, p.txId, { t: 'COMMIT', txId: p.txId, at: now() });
      await this.#finish(p.txId, p.plan, false);
    } finally {
      await l.release().catch(() => {});
    }
  }

  /** Rolls back a prepared transaction: nothing it staged becomes visible. */
  async rollbackPrepared(gid: string): Promise<void> {
    await this.recover();
    const l = await this.#lockRoot();
    try {
      const p = await this.#findPrepared(gid);
      await appendJournal(this.#fs, this.#jdir, p.txId, { t: 'ROLLBACK', at: now() });
      await this.#cleanup(p.txId);
    } finally {
      await l.release().catch(() => {});
    }
  }
}

const now = () => new Date().toISOString();

async function exists(fs: FsAdapter, p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

type TxState =
  | { kind: 'committed'; plan: Plan; stashed: boolean }
  | { kind: 'prepared' }
  | { kind: 'unfinished' };

type CommittedState = Extract<TxState, { kind: 'committed' }>;

/** What a journal's valid records say. */
export function stateOf(recs: JournalRecord[]): TxState {
  const first = recs[0];
  if (!first) return { kind: 'unfinished' };
  const stashed = recs.some((r) => r.t === 'STASHED');
  if (first.t === 'COMMIT' && first.plan) return { kind: 'committed', plan: first.plan, stashed };
  if (first.t === 'PREPARED') {
    if (recs.some((r) => r.t === 'ROLLBACK')) return { kind: 'unfinished' };
    if (recs.some((r) => r.t === 'COMMIT')) return { kind: 'committed', plan: first.plan, stashed };
    return { kind: 'prepared' };
  }
  return { kind: 'unfinished' };
}
