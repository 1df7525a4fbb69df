/**
 * The file-transaction journal: one file per transaction, `.fstx/<txId>.journal`, one
 * record per line as `<crc32c hex>\t<json>`, fsynced after every record. A line that fails
 * its CRC (or has no newline) is a torn write and ends the journal: it was never durable,
 * so nothing that depended on it happened.
 */
import { join } from 'node:path';
import { crc32c } from '../crc32c.js';
import { errnoOf } from '../errors.js';
import type { FsAdapter } from '../fs-adapter.js';
import { writeAll } from '../write-all.js';

/** Moves applied by a committed transaction (paths relative to the root). */
export interface Plan {
  /** Phase 1: originals that are the source of a rename are moved into staging. */
  stash: { from: string; to: string }[];
  /** Phase 2: staged (or stashed) files renamed onto their targets. */
  place: { from: string; to: string }[];
  /** Phase 2: targets deleted. */
  remove: string[];
}

export type JournalRecord =
  | { t: 'COMMIT'; txId: string; plan?: Plan; at: string }
  | { t: 'PREPARED'; txId: string; gid: string; plan: Plan; at: string }
  | { t: 'ROLLBACK'; at: string }
  /** Phase 1 finished: on redo, skip it (its sources now hold new content). */
  | { t: 'STASHED' };

export const JOURNAL_SUFFIX = '.journal';

export function encodeLine(rec: JournalRecord): Buffer {
  const json = JSON.stringify(rec);
  return Buffer.from(`${crc32c(Buffer.from(json, 'utf8')).toString(16).padStart(8, '0')}\t${json}\n`, 'utf8');
}

/** Valid records of a journal, up to the first torn or corrupt line. */
export function decodeJournal(buf: Buffer): JournalRecord[] {
  const out: JournalRecord[] = [];
  const text = buf.toString('utf8');
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) break; // no newline: torn
    const line = text.slice(start, nl);
    start = nl + 1;
    const tab = line.indexOf('\t');
    if (tab !== 8) break;
    const json = line.slice(9);
    if (Number.parseInt(line.slice(0, 8), 16) !== crc32c(Buffer.from(json, 'utf8'))) break;
    try {
      out.push(JSON.parse(json) as JournalRecord);
    } catch {
      break;
    }
  }
  return out;
}

/** Creates a journal with its first record, fsyncs it and its directory: durable on return. */
export async function createJournal(
  fs: FsAdapter,
  dir: string,
  txId: string,
  first: JournalRecord,
): Promise<void> {
  const f = await fs.open(join(dir, txId + JOURNAL_SUFFIX), 'wx', 0o644);
  try {
    await writeAll(f, encodeLine(first), 0);
    await f.sync();
  } finally {
    await f.close();
  }
  await fs.syncDir(dir);
}

/** Appends a record and fsyncs it. */
export async function appendJournal(
  fs: FsAdapter,
  dir: string,
  txId: string,
  rec: JournalRecord,
): Promise<void> {
  const f = await fs.open(join(dir, txId + JOURNAL_SUFFIX), 'a');
  try {
    await writeAll(f, encodeLine(rec), null);
    await f.sync();
  } finally {
    await f.close();
  }
}

export async function readJournal(
  fs: FsAdapter,
  dir: string,
  txId: string,
): Promise<JournalRecord[] | undefined> {
  try {
    return decodeJournal(await fs.readFile(join(dir, txId + JOURNAL_SUFFIX)));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}
