/**
 * Who owns a lock, and whether that owner can still be alive: pid alone is not enough
 * (pids are reused, and a lock may survive a reboot on disk), so txkit also records the
 * host, the boot id and the process start time.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { errnoOf } from './errors.js';

export interface ProcessIdentity {
  pid: number;
  hostname: string;
  /** Linux `/proc/sys/kernel/random/boot_id`; undefined elsewhere. */
  bootId: string | undefined;
  /** Linux `/proc/<pid>/stat` field 22 (clock ticks since boot); undefined elsewhere. */
  procStartTime: string | undefined;
}

let bootIdCache: string | null | undefined;
function bootId(): string | undefined {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache ?? undefined;
}

/** Start time of `pid` from `/proc/<pid>/stat`, or undefined when unknown. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19]; // field 22; `rest` starts at field 3
  } catch {
    return undefined;
  }
}

let selfCache: ProcessIdentity | undefined;
export function currentProcess(): ProcessIdentity {
  if (!selfCache || selfCache.pid !== process.pid) {
    selfCache = {
      pid: process.pid,
      hostname: hostname(),
      bootId: bootId(),
      procStartTime: procStartTime(process.pid),
    };
  }
  return selfCache;
}

/**
 * `'dead'` when the owner certainly is not running (same host, and another boot, or no
 * such pid, or a reused pid); `'alive'` when it certainly is; `'unknown'` for another host.
 */
export function ownerLiveness(owner: Partial<ProcessIdentity>): 'alive' | 'dead' | 'unknown' {
  const self = currentProcess();
  if (owner.hostname !== self.hostname || typeof owner.pid !== 'number') return 'unknown';
  if (owner.bootId && self.bootId && owner.bootId !== self.bootId) return 'dead';
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return 'dead';
    if (errnoOf(err) !== 'EPERM') return 'unknown'; // EPERM: alive, not ours
  }
  const start = procStartTime(owner.pid);
  if (owner.procStartTime && start && owner.procStartTime !== start) return 'dead'; // pid reused
  return 'alive';
}
