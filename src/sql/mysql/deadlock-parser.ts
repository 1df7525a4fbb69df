/**
 * Parser for InnoDB deadlock reports: the `LATEST DETECTED DEADLOCK` section of
 * `SHOW ENGINE INNODB STATUS` and the error-log dumps written with
 * `innodb_print_all_deadlocks=ON`. It reads MariaDB 10.6+ (`full` and `basic` reports:
 * `MariaDB thread id`, un-numbered `*** WAITING FOR…` and `*** CONFLICTING WITH:`),
 * MySQL 5.7 (`*** (n) WAITING FOR…`, `*** (2) HOLDS THE LOCK(S):`) and MySQL 8
 * (`HOLDS THE LOCK(S)` for every transaction), with any number of transactions.
 *
 * One deadlock is one report, whatever its size; a truncated dump yields what it holds,
 * marked `truncated`.
 */

export type LockMode = 'X' | 'S' | 'IX' | 'IS' | 'AUTO-INC' | (string & {});

export interface LockInfo {
  kind: 'RECORD' | 'TABLE';
  spaceId?: number;
  pageNo?: number;
  nBits?: number;
  index?: string;
  /** `schema.table`, unquoted. */
  table: string;
  trxId: string;
  mode: LockMode;
  recNotGap?: boolean;
  gapOnly?: boolean;
  insertIntention?: boolean;
  waiting: boolean;
  /** The first field (the index key) of each locked record: text, an integer, or `0x…` hex. */
  records?: string[];
}

export interface DeadlockTxn {
  /** 1-based position in the report: `*** (n) TRANSACTION:`. */
  index: number;
  trxId: string;
  activeSec: number;
  /** What the transaction was doing, e.g. `starting index read`; empty when not shown. */
  operationState: string;
  tablesInUse: number;
  tablesLocked: number;
  lockStructs: number;
  heapSize: number;
  rowLocks: number;
  undoLogEntries: number;
  threadId: number | null;
  queryId: number | null;
  host: string;
  /** Client address, when the thread line shows one. */
  address?: string;
  user: string;
  state: string;
  query: string;
  /** Locks the transaction holds (MySQL's `HOLDS THE LOCK(S)`; MariaDB does not print them). */
  holds: LockInfo[];
  waitingFor: LockInfo | null;
  /** Locks of other transactions the wait conflicts with (MariaDB `full` reports). */
  conflictingWith: LockInfo[];
  /** Transaction ids this one waits for, where the report names them. */
  blockedBy: string[];
}

export interface DeadlockReport {
  /** The timestamp line of the report, e.g. `2026-11-24 01:25:17 0x7f9c984f46c0`. */
  detectedAt: string;
  transactions: DeadlockTxn[];
  /** `*** WE ROLL BACK TRANSACTION (n)`: n, or null when the report does not say. */
  victimIndex: number | null;
  /** The dump ended before the victim line. */
  truncated: boolean;
  /** Which report format it was read as. */
  format: 'mariadb-full' | 'mariadb-basic' | 'mysql';
  raw: string;
}

export interface InnodbStatus {
  latestDeadlock?: DeadlockReport;
}

const DASHES = /^-{4,}\s*$/;
const TXN_HEADER = /^\*\*\* \((\d+)\) TRANSACTION:\s*$/;
const WAITING_HEADER = /^\*\*\* (?:\((\d+)\) )?WAITING FOR THIS LOCK TO BE GRANTED:\s*$/;
const HOLDS_HEADER = /^\*\*\* (?:\((\d+)\) )?HOLDS THE LOCK\(S\):\s*$/;
const CONFLICT_HEADER = /^\*\*\* (?:\((\d+)\) )?CONFLICTING WITH:\s*$/;
const VICTIM = /^\*\*\* WE ROLL BACK TRANSACTION \((\d+)\)/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[ T]\s*\d{1,2}:\d{2}:\d{2}/;

/**
 * Parses the `Status` text of `SHOW ENGINE INNODB STATUS` (or just its deadlock section).
 * `latestDeadlock` is undefined when the text has no deadlock section.
 */
export function parseInnodbStatus(text: string): InnodbStatus {
  const section = extractDeadlockSection(text);
  if (section === undefined) return {};
  const report = parseReport(section.split(/\r?\n/), section);
  return report ? { latestDeadlock: report } : {};
}

/**
 * The deadlock section: from the line after `LATEST DETECTED DEADLOCK` and its dashes to
 * the dashes line that opens the next section (`TRANSACTIONS`), or the end of the text.
 * The dashes right after the header are the header's underline, not the end.
 */
export function extractDeadlockSection(text: string): string | undefined {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((l) => l.trim() === 'LATEST DETECTED DEADLOCK');
  if (start < 0) return undefined;
  let i = start + 1;
  if (i < lines.length && DASHES.test(lines[i] as string)) i++;
  const body: string[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i] as string;
    if (DASHES.test(line)) {
      const next = lines[i + 1];
      if (next === undefined || /^[A-Z][A-Z /]+$/.test(next.trim())) break;
    }
    body.push(line);
  }
  return body.join('\n');
}

/** Strips an error-log prefix (`2026-11-24  1:29:07 40 [Note] InnoDB: `; MySQL 8's `[MY-…] [InnoDB]`). */
const LOG_PREFIX =
  /^(\d{4}-\d{2}-\d{2}[ T]\s*\d{1,2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?)\s+\d+\s+\[(\w+)\]\s+(?:\[MY-\d+\]\s+)?(?:\[InnoDB\]\s+|InnoDB:\s?)?/;
const DUMP_START = /Transactions deadlock detected, dumping detailed information\./;

/**
 * Parses every deadlock dump in an error-log excerpt (`innodb_print_all_deadlocks=ON`).
 * Other log lines (warnings, unrelated notes) are ignored.
 */
export function parseErrorLogDeadlocks(text: string): DeadlockReport[] {
  const out: DeadlockReport[] = [];
  let current: { at: string; lines: string[]; raw: string[] } | undefined;
  const flush = () => {
    if (!current) return;
    const report = parseReport([current.at, ...current.lines], current.raw.join('\n'));
    if (report) out.push(report);
    current = undefined;
  };
  for (const line of text.split(/\r?\n/)) {
    const m = LOG_PREFIX.exec(line);
    if (m) {
      const rest = line.slice(m[0].length);
      if (DUMP_START.test(rest)) {
        flush();
        current = { at: normaliseLogTime(m[1] as string), lines: [], raw: [line] };
        continue;
      }
      if (m[2] !== 'Note' || !current) {
        // A warning or an unrelated entry: not part of a dump.
        continue;
      }
      current.lines.push(rest);
      current.raw.push(line);
      if (VICTIM.test(rest)) flush();
      continue;
    }
    if (current) {
      current.lines.push(line);
      current.raw.push(line);
    }
  }
  flush();
  return out;
}

function normaliseLogTime(ts: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})[ T]\s*(\d{1,2}):(\d{2}):(\d{2})/.exec(ts);
  if (!m) return ts;
  return `${m[1]} ${(m[2] as string).padStart(2, '0')}:${m[3]}:${m[4]}`;
}

/** Parses status output or error-log text, whichever `text` is: every deadlock found. */
export function parseDeadlocks(text: string): DeadlockReport[] {
  if (DUMP_START.test(text)) return parseErrorLogDeadlocks(text);
  const latest = parseInnodbStatus(text).latestDeadlock;
  return latest ? [latest] : [];
}

/**
 * The text of a `SHOW ENGINE INNODB STATUS` row, read from the `Status` column by name
 * (the row is `Type, Name, Status`; `Type` is just "InnoDB").
 */
export function statusTextFromRow(row: unknown): string | undefined {
  if (row === null || typeof row !== 'object') return undefined;
  if (Array.isArray(row)) return typeof row[2] === 'string' ? row[2] : undefined;
  const status = (row as Record<string, unknown>).Status;
  if (typeof status === 'string') return status;
  if (Buffer.isBuffer(status)) return status.toString('utf8');
  return undefined;
}

type Block = 'txn' | 'waiting' | 'holds' | 'conflict' | 'none';

function emptyTxn(index: number): DeadlockTxn {
  return {
    index,
    trxId: '',
    activeSec: 0,
    operationState: '',
    tablesInUse: 0,
    tablesLocked: 0,
    lockStructs: 0,
    heapSize: 0,
    rowLocks: 0,
    undoLogEntries: 0,
    threadId: null,
    queryId: null,
    host: '',
    user: '',
    state: '',
    query: '',
    holds: [],
    waitingFor: null,
    conflictingWith: [],
    blockedBy: [],
  };
}

function parseReport(lines: string[], raw: string): DeadlockReport | undefined {
  let detectedAt = '';
  const txns: DeadlockTxn[] = [];
  let victimIndex: number | null = null;
  let current: DeadlockTxn | undefined;
  let block: Block = 'none';
  let lock: LockInfo | undefined;
  let queryLines: string[] = [];
  let sawConflict = false;
  let sawMysql = false;

  const target = (n: string | undefined): DeadlockTxn | undefined =>
    n === undefined ? current : (txns.find((t) => t.index === Number(n)) ?? current);
  const endLock = () => {
    lock = undefined;
  };
  const endQuery = () => {
    if (current && queryLines.length > 0 && current.query === '')
      current.query = queryLines.join('\n').trim();
    queryLines = [];
  };

  for (const rawLine of lines) {
    const line = rawLine.replace(/\s+$/, '');
    if (!detectedAt && TIMESTAMP.test(line.trim()) && txns.length === 0) {
      detectedAt = line.trim();
      continue;
    }
    const txn = TXN_HEADER.exec(line);
    if (txn) {
      const m = txn;
      endQuery();
      endLock();
      current = emptyTxn(Number(m[1]));
      txns.push(current);
      block = 'txn';
      continue;
    }
    const wait = WAITING_HEADER.exec(line);
    if (wait) {
      const m = wait;
      endQuery();
      endLock();
      if (m[1] !== undefined) sawMysql = true;
      current = target(m[1]);
      block = 'waiting';
      continue;
    }
    const hold = HOLDS_HEADER.exec(line);
    if (hold) {
      const m = hold;
      endQuery();
      endLock();
      sawMysql = true;
      current = target(m[1]);
      block = 'holds';
      continue;
    }
    const conflict = CONFLICT_HEADER.exec(line);
    if (conflict) {
      const m = conflict;
      endQuery();
      endLock();
      sawConflict = true;
      current = target(m[1]);
      block = 'conflict';
      continue;
    }
    const victim = VICTIM.exec(line);
    if (victim) {
      const m = victim;
      endQuery();
      endLock();
      victimIndex = Number(m[1]);
      block = 'none';
      continue;
    }
    if (!current) continue;

    if (block === 'txn') {
      if (readTxnLine(current, line)) continue;
      if (line.trim() === '') {
        endQuery();
        continue;
      }
      if (/ thread id \d+/.test(line)) {
        if (/^MySQL thread id/.test(line)) sawMysql = true;
        readThreadLine(current, line);
        continue;
      }
      if (current.threadId !== null) queryLines.push(line);
      continue;
    }
    if (block === 'waiting' || block === 'holds' || block === 'conflict') {
      const parsed = parseLockHeader(line);
      if (parsed) {
        lock = parsed;
        if (block === 'waiting') current.waitingFor = lock;
        else if (block === 'holds') current.holds.push(lock);
        else {
          current.conflictingWith.push(lock);
          if (lock.trxId && lock.trxId !== current.trxId && !current.blockedBy.includes(lock.trxId)) {
            current.blockedBy.push(lock.trxId);
          }
        }
        continue;
      }
      const field = /^\s*0: len (\d+); hex ([0-9a-f]+);/.exec(line);
      if (field && lock) {
        lock.records = [...(lock.records ?? []), keyText(Number(field[1]), field[2] as string)];
      }
    }
  }
  endQuery();
  if (txns.length === 0) return undefined;
  return {
    detectedAt,
    transactions: txns,
    victimIndex,
    truncated: victimIndex === null,
    format: sawMysql ? 'mysql' : sawConflict ? 'mariadb-full' : 'mariadb-basic',
    raw,
  };
}

/**
 * The key as text, decided from its bytes (`hex`; `asc` prints every unprintable byte as a
 * space, so it cannot tell padding from binary): printable bytes as text, trailing spaces
 * kept; a 4- or 8-byte InnoDB integer (stored with its sign bit flipped) as its decimal
 * value; anything else, or a key InnoDB printed only in part, as `0x…`.
 */
function keyText(len: number, hex: string): string {
  if (hex.length !== len * 2) return `0x${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.every((b) => b >= 0x20 && b <= 0x7e)) return bytes.toString('latin1');
  if (len === 4 || len === 8) {
    const bits = len * 8;
    return BigInt.asIntN(bits, BigInt(`0x${hex}`) ^ (1n << BigInt(bits - 1))).toString();
  }
  return `0x${hex}`;
}

function readTxnLine(t: DeadlockTxn, line: string): boolean {
  let m = /^TRANSACTION (\d+), ACTIVE (?:\(PREPARED\) )?(\d+) sec(?: (.*))?$/.exec(line);
  if (m) {
    t.trxId = m[1] as string;
    t.activeSec = Number(m[2]);
    t.operationState = (m[3] ?? '').trim();
    return true;
  }
  m = /^mysql tables in use (\d+), locked (\d+)/.exec(line);
  if (m) {
    t.tablesInUse = Number(m[1]);
    t.tablesLocked = Number(m[2]);
    return true;
  }
  m =
    /^(?:LOCK WAIT )?(\d+) lock struct\(s\), heap size (\d+), (\d+) row lock\(s\)(?:, undo log entries (\d+))?/.exec(
      line,
    );
  if (m) {
    t.lockStructs = Number(m[1]);
    t.heapSize = Number(m[2]);
    t.rowLocks = Number(m[3]);
    t.undoLogEntries = m[4] === undefined ? 0 : Number(m[4]);
    return true;
  }
  return false;
}

const ADDRESS = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/i;

function readThreadLine(t: DeadlockTxn, line: string): void {
  const m = /thread id (\d+), OS thread handle \S+, query id (\d+)\s*(.*)$/.exec(line);
  if (!m) {
    const id = / thread id (\d+)/.exec(line);
    if (id) t.threadId = Number(id[1]);
    return;
  }
  t.threadId = Number(m[1]);
  t.queryId = Number(m[2]);
  const words = (m[3] ?? '').split(/\s+/).filter(Boolean);
  if (words.length >= 2 && ADDRESS.test(words[1] as string)) {
    t.host = words[0] as string;
    t.address = words[1] as string;
    t.user = words[2] ?? '';
    t.state = words.slice(3).join(' ');
  } else {
    t.host = words[0] ?? '';
    // Without name resolution the host is the client address itself.
    if (ADDRESS.test(t.host) && t.host !== '') t.address = t.host;
    t.user = words[1] ?? '';
    t.state = words.slice(2).join(' ');
  }
}

/** `` `s`.`t` `` (or a name from an information_schema column) as `s.t`, backquotes undone. */
export function unquoteTable(name: unknown): string {
  return String(name ?? '')
    .split('.')
    .map((p) => p.replace(/^`|`$/g, '').replace(/``/g, '`'))
    .join('.');
}

/** Parses `RECORD LOCKS … index X of table `s`.`t` trx id N lock_mode X …` or `TABLE LOCK table … lock mode IX`. */
export function parseLockHeader(line: string): LockInfo | undefined {
  const rec =
    /^RECORD LOCKS space id (\d+) page no (\d+) n bits (\d+) index (\S+) of table (`(?:[^`]|``)+`\.`(?:[^`]|``)+`) trx id (\d+) (.*)$/.exec(
      line,
    );
  if (rec) {
    return {
      kind: 'RECORD',
      spaceId: Number(rec[1]),
      pageNo: Number(rec[2]),
      nBits: Number(rec[3]),
      index: (rec[4] as string).replace(/^`|`$/g, ''),
      table: unquoteTable(rec[5] as string),
      trxId: rec[6] as string,
      ...modeOf(rec[7] as string),
    };
  }
  const tab = /^TABLE LOCK table (`(?:[^`]|``)+`\.`(?:[^`]|``)+`) trx id (\d+) (.*)$/.exec(line);
  if (tab) {
    return {
      kind: 'TABLE',
      table: unquoteTable(tab[1] as string),
      trxId: tab[2] as string,
      ...modeOf(tab[3] as string),
    };
  }
  return undefined;
}

function modeOf(
  text: string,
): Pick<LockInfo, 'mode' | 'waiting'> & Partial<Pick<LockInfo, 'recNotGap' | 'gapOnly' | 'insertIntention'>> {
  const mode = /lock[_ ]mode (\S+)/.exec(text)?.[1] ?? '';
  const out: Pick<LockInfo, 'mode' | 'waiting'> &
    Partial<Pick<LockInfo, 'recNotGap' | 'gapOnly' | 'insertIntention'>> = {
    mode,
    waiting: /\bwaiting\b/.test(text),
  };
  if (/locks rec but not gap/.test(text)) out.recNotGap = true;
  if (/locks gap before rec/.test(text)) out.gapOnly = true;
  if (/insert intention/.test(text)) out.insertIntention = true;
  return out;
}
