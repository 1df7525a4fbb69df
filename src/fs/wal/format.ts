/**
 * WAL on-disk format (little-endian except the magic).
 *
 * Segment `wal_<seq>.log` header, 34 bytes:
 *   magic u32 BE 0x57414C00 ("WAL\0") | formatVersion u16 | segmentSeq u64 | firstLsn u64 |
 *   createdAtMs u64 | headerCrc32c u32 (over the 30 bytes before it)
 * Record, 21-byte header + key + payload:
 *   totalLen u32 (whole record) | crc32c u32 (over everything after this field) |
 *   type u8 | lsn u64 | keyLen u32 (bytes) | key | payload
 */
import { crc32c } from '../crc32c.js';

export const MAGIC = 0x57414c00;
export const FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 34;
export const RECORD_HEADER_BYTES = 21;
const SEGMENT_NAME = /^wal_(\d{6,})\.log$/;

/** Record types. 0..15 are the seed's op codes; the rest are reserved by txkit. */
export const RecordType = Object.freeze({
  OTHER: 0,
  SET: 1,
  DELETE: 2,
  UPDATE: 3,
  BEGIN: 16,
  COMMIT: 17,
  ABORT: 18,
  CHECKPOINT: 32,
});

export interface SegmentHeader {
  formatVersion: number;
  segmentSeq: bigint;
  firstLsn: bigint;
  createdAtMs: number;
}

export interface WalRecord {
  lsn: bigint;
  type: number;
  key: Buffer;
  payload: Buffer;
}

export const segmentName = (seq: bigint) => `wal_${String(seq).padStart(10, '0')}.log`;
export function parseSegmentName(name: string): bigint | undefined {
  const m = SEGMENT_NAME.exec(name);
  return m ? BigInt(m[1]!) : undefined;
}

export function encodeSegmentHeader(seq: bigint, firstLsn: bigint, createdAtMs = Date.now()): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt16LE(FORMAT_VERSION, 4);
  b.writeBigUInt64LE(seq, 6);
  b.writeBigUInt64LE(firstLsn, 14);
  b.writeBigUInt64LE(BigInt(createdAtMs), 22);
  b.writeUInt32LE(crc32c(b, 0, 0, 30), 30);
  return b;
}

/** The header, or a reason it is invalid. */
export function decodeSegmentHeader(b: Uint8Array): SegmentHeader | string {
  if (b.length < SEGMENT_HEADER_BYTES)
    return `header truncated (${b.length} of ${SEGMENT_HEADER_BYTES} bytes)`;
  const buf = Buffer.from(b.buffer, b.byteOffset, SEGMENT_HEADER_BYTES);
  if (buf.readUInt32BE(0) !== MAGIC) return 'bad magic';
  if (buf.readUInt32LE(30) !== crc32c(buf, 0, 0, 30)) return 'header checksum mismatch';
  const formatVersion = buf.readUInt16LE(4);
  if (formatVersion !== FORMAT_VERSION) return `unknown format version ${formatVersion}`;
  return {
    formatVersion,
    segmentSeq: buf.readBigUInt64LE(6),
    firstLsn: buf.readBigUInt64LE(14),
    createdAtMs: Number(buf.readBigUInt64LE(22)),
  };
}

export function encodeRecord(type: number, lsn: bigint, key: Uint8Array, payload: Uint8Array): Buffer {
  const total = RECORD_HEADER_BYTES + key.length + payload.length;
  const b = Buffer.allocUnsafe(total);
  b.writeUInt32LE(total, 0);
  b.writeUInt8(type, 8);
  b.writeBigUInt64LE(lsn, 9);
  b.writeUInt32LE(key.length, 17);
  b.set(key, RECORD_HEADER_BYTES);
  b.set(payload, RECORD_HEADER_BYTES + key.length);
  b.writeUInt32LE(crc32c(b, 0, 8, total), 4);
  return b;
}

/** Writes a new LSN into an encoded record and fixes its CRC. */
export function stampLsn(b: Buffer, lsn: bigint): void {
  b.writeBigUInt64LE(lsn, 9);
  b.writeUInt32LE(crc32c(b, 0, 8, b.length), 4);
}

export interface ScanProblem {
  offset: number;
  /** LSN expected at that offset. */
  lsn: bigint;
  reason: string;
}

export interface SegmentScan {
  records: (WalRecord & { offset: number })[];
  /** End of the last valid record. */
  validEnd: number;
  /** LSN the next record would have. */
  nextLsn: bigint;
  /** The first invalid byte range, when the segment does not end cleanly. */
  problem?: ScanProblem;
}

/** Parses the records of one segment body, starting at `firstLsn`, stopping at the first invalid one. */
export function scanRecords(buf: Buffer, firstLsn: bigint, maxRecordBytes: number, keep = true): SegmentScan {
  const records: SegmentScan['records'] = [];
  let off = SEGMENT_HEADER_BYTES;
  let lsn = firstLsn;
  const fail = (reason: string): SegmentScan => ({
    records,
    validEnd: off,
    nextLsn: lsn,
    problem: { offset: off, lsn, reason },
  });
  while (off < buf.length) {
    if (buf.length - off < RECORD_HEADER_BYTES) return fail('incomplete record header');
    const total = buf.readUInt32LE(off);
    if (total < RECORD_HEADER_BYTES) return fail(total === 0 ? 'zero-filled tail' : `bad length ${total}`);
    if (total > maxRecordBytes + RECORD_HEADER_BYTES) return fail(`length ${total} above the record limit`);
    if (off + total > buf.length) return fail(`record of ${total} bytes runs past the end of the file`);
    if (buf.readUInt32LE(off + 4) !== crc32c(buf, 0, off + 8, off + total)) return fail('checksum mismatch');
    const recLsn = buf.readBigUInt64LE(off + 9);
    if (recLsn !== lsn) return fail(`LSN ${recLsn} where ${lsn} was expected`);
    const keyLen = buf.readUInt32LE(off + 17);
    if (RECORD_HEADER_BYTES + keyLen > total) return fail(`key length ${keyLen} exceeds the record`);
    if (keep) {
      const k = off + RECORD_HEADER_BYTES;
      records.push({
        lsn,
        type: buf[off + 8]!,
        key: buf.subarray(k, k + keyLen),
        payload: buf.subarray(k + keyLen, off + total),
        offset: off,
      });
    }
    off += total;
    lsn++;
  }
  return { records, validEnd: off, nextLsn: lsn };
}
