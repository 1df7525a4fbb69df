/**
 * Reading a WAL directory: segments in order, headers checked, records scanned with CRC
 * and LSN continuity. Shared by recovery (`openWal`) and the `txkit fs wal` commands.
 */
import { join } from 'node:path';
import { errnoOf } from '../errors.js';
import { type FsAdapter, nodeFs } from '../fs-adapter.js';
import {
  decodeSegmentHeader,
  parseSegmentName,
  type ScanProblem,
  SEGMENT_HEADER_BYTES,
  type SegmentHeader,
  scanRecords,
  type WalRecord,
} from './format.js';

export const CHECKPOINT_FILE = 'checkpoint.json';
export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;

export interface SegmentInfo {
  name: string;
  seq: bigint;
  /** From the header; undefined when the header is invalid. */
  header: SegmentHeader | undefined;
  bytes: number;
  validEnd: number;
  /** LSN after the last valid record. */
  nextLsn: bigint;
  recordCount: number;
  problem?: ScanProblem & { headerInvalid?: boolean };
}

export interface Checkpoint {
  checkpoint_lsn: string;
  timestamp: string;
  data?: unknown;
}

export async function listSegments(fs: FsAdapter, dir: string): Promise<{ name: string; seq: bigint }[]> {
  const out: { name: string; seq: bigint }[] = [];
  for (const name of await fs.readdir(dir)) {
    const seq = parseSegmentName(name);
    if (seq !== undefined) out.push({ name, seq });
  }
  return out.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
}

export async function readCheckpoint(fs: FsAdapter, dir: string): Promise<Checkpoint | undefined> {
  try {
    return JSON.parse((await fs.readFile(join(dir, CHECKPOINT_FILE))).toString('utf8')) as Checkpoint;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Scans one segment file; `onRecord` gets each valid record (when given). */
export async function scanSegment(
  fs: FsAdapter,
  dir: string,
  seg: { name: string; seq: bigint },
  options: { maxRecordBytes?: number; onRecord?: (r: WalRecord) => void | Promise<void>; upTo?: number } = {},
): Promise<SegmentInfo> {
  let buf = await fs.readFile(join(dir, seg.name));
  if (options.upTo !== undefined) buf = buf.subarray(0, options.upTo);
  const header = decodeSegmentHeader(buf);
  if (typeof header === 'string') {
    return {
      ...seg,
      header: undefined,
      bytes: buf.length,
      validEnd: 0,
      nextLsn: 0n,
      recordCount: 0,
      problem: { offset: 0, lsn: 0n, reason: header, headerInvalid: true },
    };
  }
  if (header.segmentSeq !== seg.seq) {
    return {
      ...seg,
      header,
      bytes: buf.length,
      validEnd: 0,
      nextLsn: header.firstLsn,
      recordCount: 0,
      problem: {
        offset: 0,
        lsn: header.firstLsn,
        reason: `header says segment ${header.segmentSeq}`,
        headerInvalid: true,
      },
    };
  }
  const scan = scanRecords(
    buf,
    header.firstLsn,
    options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    !!options.onRecord,
  );
  if (options.onRecord) for (const r of scan.records) await options.onRecord(r);
  const info: SegmentInfo = {
    ...seg,
    header,
    bytes: buf.length,
    validEnd: scan.validEnd,
    nextLsn: scan.nextLsn,
    recordCount: Number(scan.nextLsn - header.firstLsn),
  };
  if (scan.problem) info.problem = scan.problem;
  return info;
}

export { SEGMENT_HEADER_BYTES };

export interface WalVerifyReport {
  dir: string;
  segments: SegmentInfo[];
  checkpointLsn: bigint | undefined;
  firstLsn: bigint | undefined;
  lastLsn: bigint | undefined;
  records: number;
  /** Problems recovery would repair: a torn tail of the last segment. */
  tornTail: (ScanProblem & { segment: string; bytes: number }) | undefined;
  /** Problems recovery refuses: invalid data in a sealed segment, LSN gaps between segments. */
  corruption: (ScanProblem & { segment: string })[];
}

/** Full read-only scan of a WAL directory (takes no lock, changes nothing). */
export async function verifyWal(dir: string, options: { fs?: FsAdapter; maxRecordBytes?: number } = {}) {
  const fs = options.fs ?? nodeFs;
  const segs = await listSegments(fs, dir);
  const cp = await readCheckpoint(fs, dir);
  const report: WalVerifyReport = {
    dir,
    segments: [],
    checkpointLsn: cp ? BigInt(cp.checkpoint_lsn) : undefined,
    firstLsn: undefined,
    lastLsn: undefined,
    records: 0,
    tornTail: undefined,
    corruption: [],
  };
  let expected: bigint | undefined;
  for (let i = 0; i < segs.length; i++) {
    const info = await scanSegment(fs, dir, segs[i]!, options);
    report.segments.push(info);
    const last = i === segs.length - 1;
    if (info.header && expected !== undefined && info.header.firstLsn !== expected) {
      report.corruption.push({
        segment: info.name,
        offset: 0,
        lsn: expected,
        reason: `LSN gap: segment starts at ${info.header.firstLsn}, expected ${expected}`,
      });
    }
    if (info.header) {
      report.firstLsn ??= info.header.firstLsn;
      expected = info.nextLsn;
      report.records += info.recordCount;
      if (info.recordCount > 0) report.lastLsn = info.nextLsn - 1n;
    }
    if (info.problem) {
      if (last) report.tornTail = { ...info.problem, segment: info.name, bytes: info.bytes - info.validEnd };
      else {
        report.corruption.push({ ...info.problem, segment: info.name });
        expected = undefined; // what follows a corrupt segment cannot be checked for gaps
      }
    }
  }
  if (
    report.checkpointLsn !== undefined &&
    report.firstLsn !== undefined &&
    report.firstLsn > report.checkpointLsn + 1n
  ) {
    report.corruption.push({
      segment: report.segments[0]!.name,
      offset: 0,
      lsn: report.checkpointLsn + 1n,
      reason: `records ${report.checkpointLsn + 1n}..${report.firstLsn - 1n} after the checkpoint are missing`,
    });
  }
  return report;
}

/** Streams the valid records of a WAL directory with `lsn >= fromLsn` (read-only). */
export async function* readWal(
  dir: string,
  options: { fs?: FsAdapter; fromLsn?: bigint; maxRecordBytes?: number } = {},
): AsyncGenerator<WalRecord & { segment: string }> {
  const fs = options.fs ?? nodeFs;
  const from = options.fromLsn ?? 0n;
  for (const seg of await listSegments(fs, dir)) {
    const got: (WalRecord & { segment: string })[] = [];
    const info = await scanSegment(fs, dir, seg, {
      ...options,
      onRecord: (r) => {
        if (r.lsn >= from) got.push({ ...r, segment: seg.name });
      },
    });
    yield* got;
    if (info.problem) return;
  }
}
