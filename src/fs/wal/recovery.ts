/**
 * WAL recovery scan (run by `openWal` under the writer lock): segments in order, headers
 * checked, records checked for CRC and LSN continuity. The first invalid record of the
 * **last** segment is a torn tail: the file is cut there and fsynced. Anything invalid
 * before that, or an LSN gap, is corruption: `WalCorruptionError`, never skipped silently
 * (unless `onCorruption: 'truncate'`, which cuts there and drops what follows).
 */
import { join } from 'node:path';
import { fsEvents } from '../events.js';
import type { FsAdapter } from '../fs-adapter.js';
import { WalCorruptionError } from './errors.js';
import { SEGMENT_HEADER_BYTES } from './format.js';
import { listSegments, readCheckpoint, scanSegment } from './reader.js';

export interface Segment {
  name: string;
  seq: bigint;
  firstLsn: bigint;
}

export interface RecoveredWal {
  checkpointLsn: bigint;
  /** Valid segments, oldest first (empty: start a new one). */
  segments: Segment[];
  /** LSN the next record gets. */
  nextLsn: bigint;
  /** Highest segment number seen (also of deleted ones), so numbers never repeat. */
  lastSeq: bigint;
  truncations: number;
}

export async function recoverWalDir(
  fs: FsAdapter,
  dir: string,
  o: { maxRecordBytes: number; onCorruption: 'fail' | 'truncate' },
): Promise<RecoveredWal> {
  const cp = await readCheckpoint(fs, dir);
  const checkpointLsn = cp ? BigInt(cp.checkpoint_lsn) : 0n;
  const found = await listSegments(fs, dir);
  const segments: Segment[] = [];
  let truncations = 0;
  let expected: bigint | undefined;

  const truncateTail = async (name: string, validEnd: number, bytes: number, lastLsn: bigint) => {
    const f = await fs.open(join(dir, name), 'r+');
    try {
      await f.truncate(validEnd);
      await f.sync();
    } finally {
      await f.close();
    }
    truncations++;
    fsEvents.emit('wal-truncated', {
      dir,
      segment: name,
      offset: validEnd,
      bytes: bytes - validEnd,
      lastLsn,
    });
  };
  /** Corruption in a sealed segment: fail, or (opt-in) drop it and everything after. */
  const corrupt = async (i: number, reason: string, offset: number, lsn: bigint, keepValid = false) => {
    const seg = found[i]!.name;
    if (o.onCorruption === 'fail') {
      throw new WalCorruptionError(`WAL ${dir}: ${seg} at offset ${offset} (LSN ${lsn}): ${reason}`, {
        segment: seg,
        offset,
        lsn,
      });
    }
    if (keepValid) await truncateTail(seg, offset, (await fs.stat(join(dir, seg))).size, lsn - 1n);
    else await fs.unlink(join(dir, seg));
    for (const later of found.slice(i + 1)) await fs.unlink(join(dir, later.name));
    await fs.syncDir(dir);
  };

  for (let i = 0; i < found.length; i++) {
    const seg = found[i]!;
    const last = i === found.length - 1;
    const info = await scanSegment(fs, dir, seg, { maxRecordBytes: o.maxRecordBytes });
    if (!info.header || info.problem?.headerInvalid) {
      if (last && info.bytes <= SEGMENT_HEADER_BYTES) {
        // A crash while creating this segment: its header was never durable, so no record
        // in it was ever acknowledged.
        await fs.unlink(join(dir, seg.name));
        await fs.syncDir(dir);
        continue;
      }
      await corrupt(i, info.problem!.reason, 0, expected ?? 0n);
      break;
    }
    if (expected !== undefined && info.header.firstLsn !== expected) {
      await corrupt(i, `LSN gap: starts at ${info.header.firstLsn}, expected ${expected}`, 0, expected);
      break;
    }
    segments.push({ name: seg.name, seq: seg.seq, firstLsn: info.header.firstLsn });
    expected = info.nextLsn;
    if (info.problem) {
      if (!last) {
        await corrupt(i, info.problem.reason, info.problem.offset, info.problem.lsn, true);
        break;
      }
      await truncateTail(seg.name, info.validEnd, info.bytes, info.nextLsn - 1n);
    }
  }
  const first = segments[0]?.firstLsn;
  if (first !== undefined && first > checkpointLsn + 1n) {
    throw new WalCorruptionError(
      `WAL ${dir}: records ${checkpointLsn + 1n}..${first - 1n} after the checkpoint are missing`,
      { segment: segments[0]!.name, offset: 0, lsn: checkpointLsn + 1n },
    );
  }
  return {
    checkpointLsn,
    segments,
    nextLsn: expected ?? checkpointLsn + 1n,
    lastSeq: found.at(-1)?.seq ?? 0n,
    truncations,
  };
}
