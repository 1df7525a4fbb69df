/** Events of txkit/fs, on `node:diagnostics_channel` as `txkit:fs:<event>` and via `fsEvents.on()`. */
import { EventHub } from '../core/events.js';

export interface FsEvents {
  /** A lock left by a dead or silent owner was taken over. */
  'lock-broken': { lockPath: string; previousOwner: unknown; reason: string };
  /** A holder found that its lock was taken over; it must stop writing. */
  'lock-compromised': { lockPath: string; token: string; reason: string };
  /** WAL recovery cut an incomplete or invalid tail off the last segment. */
  'wal-truncated': { dir: string; segment: string; offset: number; bytes: number; lastLsn: bigint };
  /** The WAL stopped after a failed fsync or truncate (fail-stop). */
  'wal-failed': { dir: string; error: unknown };
  /** A file transaction was finished or undone by recovery. */
  'fstx-recovered': { root: string; txId: string; direction: 'forward' | 'backward' | 'prepared' };
  error: { source: string; error: unknown };
}

/** The process-wide hub of txkit/fs events. */
export const fsEvents = new EventHub<FsEvents>('txkit:fs:');
