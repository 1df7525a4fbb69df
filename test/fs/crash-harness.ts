/**
 * SIGKILL crash scenarios shared by the test suite and `scripts/fs-crash.ts`. Each
 * iteration starts a child workload, kills it at a random moment, recovers, and checks
 * the invariant. Returns a description of the first violation, or undefined.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fsTransaction } from '../../src/fs/file-tx/manager.js';
import { KvStore } from '../../src/fs/wal/kv-store.js';
import { openWal } from '../../src/fs/wal/wal.js';

export type Scenario = 'atomic' | 'wal' | 'fstx' | 'kv';
const CHILD = fileURLToPath(new URL('./children/crash-child.ts', import.meta.url));

interface Run {
  lines: string[];
}

/** Starts the child, waits for `ready`, lets it work for `workMs`, then SIGKILLs it. */
async function runAndKill(mode: Scenario, target: string, workMs: number): Promise<Run> {
  const logFile = join(tmpdir(), `txkit-crash-log-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, target], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TXKIT_CRASH_LOG: logFile },
  });
  const lines: string[] = [];
  let buf = '';
  let readyResolve: () => void = () => {};
  const ready = new Promise<void>((r) => {
    readyResolve = r;
  });
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      if (l.startsWith('ready')) readyResolve();
    }
  });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  await Promise.race([ready, exited]);
  await new Promise((r) => setTimeout(r, workMs)); // the random kill point
  child.kill('SIGKILL');
  await exited;
  if (!lines.some((l) => l.startsWith('ready'))) throw new Error(`${mode} child died before it was ready`);
  const logged = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  rmSync(logFile, { force: true });
  return { lines: logged };
}

const atomicPayload = (g: number) => Buffer.alloc(48 * 1024, `g${g};`);

/** Highest generation any round so far tried to write (a round may die before trying). */
interface GenHistory {
  maxTried: number;
}

function generations(run: Run, h: GenHistory) {
  const acked = run.lines.filter((l) => l.startsWith('ack ')).map((l) => Number(l.slice(4)));
  for (const l of run.lines) if (l.startsWith('try ')) h.maxTried = Math.max(h.maxTried, Number(l.slice(4)));
  return { lastAck: acked.at(-1) ?? 0, maxTried: h.maxTried, acked };
}

async function checkAtomic(dir: string, run: Run, h: GenHistory): Promise<string | undefined> {
  const file = join(dir, 'target.bin');
  const { acked, lastAck, maxTried } = generations(run, h);
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch {
    return acked.length ? `file missing after ${acked.length} acknowledged writes` : undefined;
  }
  const g = Number(/^g(\d+);/.exec(content.toString('latin1', 0, 16))?.[1]);
  if (!g || !content.equals(atomicPayload(g)))
    return `torn file: ${content.length} bytes, starts ${content.subarray(0, 16)}`;
  if (g < lastAck) return `generation ${g} is older than acknowledged ${lastAck}`;
  if (g > maxTried) return `generation ${g} was never written`;
  return undefined;
}

interface WalHistory {
  tried: Set<string>;
  acked: Map<string, string>;
}

async function checkWal(dir: string, run: Run, h: WalHistory): Promise<string | undefined> {
  const { tried, acked } = h;
  for (const l of run.lines) if (l.startsWith('try ')) tried.add(l.slice(4));
  for (const l of run.lines)
    if (l.startsWith('ack ')) {
      const [, lsn, key] = l.split(' ');
      acked.set(key!, lsn!);
    }
  const wal = await openWal(dir, { maxSegmentBytes: 64 * 1024 }); // the dead writer's lock is taken over
  const seen = new Map<string, string>();
  let expected = 1n;
  let problem: string | undefined;
  await wal.replay(1n, (r) => {
    const key = r.key.toString();
    if (r.lsn !== expected) problem ??= `LSN ${r.lsn} where ${expected} was expected`;
    expected = r.lsn + 1n;
    if (!tried.has(key)) problem ??= `phantom record ${key} (never appended)`;
    const n = Number(key.split('-')[2]);
    if (r.payload.toString() !== `payload-of-${key}`.repeat(1 + ((n + 1) % 7)))
      problem ??= `record ${key} has a wrong payload`;
    seen.set(key, String(r.lsn));
  });
  await wal.close();
  if (problem) return problem;
  for (const [key, lsn] of acked) {
    if (seen.get(key) !== lsn) return `acknowledged record ${key} (LSN ${lsn}) lost (found ${seen.get(key)})`;
  }
  return undefined;
}

async function checkFsTx(dir: string, run: Run, h: GenHistory): Promise<string | undefined> {
  const { lastAck, maxTried } = generations(run, h);
  await fsTransaction(dir).recover();
  const read = (p: string) => {
    try {
      return readFileSync(join(dir, p), 'utf8');
    } catch {
      return undefined;
    }
  };
  const a = read('a.txt');
  const b = read('sub/b.txt');
  const c = read('c.txt');
  if (a !== b || b !== c) return `mixed state: a=${a} b=${b} c=${c}`;
  const g = a === undefined ? 0 : Number(a.slice(4));
  if (g < lastAck) return `generation ${g} older than acknowledged ${lastAck}`;
  if (g > maxTried) return `generation ${g} never attempted`;
  const old = safeList(join(dir, 'old'));
  for (const n of old) {
    const k = Number(/c-(\d+)\.txt/.exec(n)?.[1]);
    if (k > g || k < g - 2) return `old/${n} does not belong to generation ${g}`;
  }
  const stray = safeList(join(dir, '.fstx')).filter((n) => n !== 'ROOT.lock');
  if (stray.length) return `journal leftovers: ${stray.join(', ')}`;
  return undefined;
}

function safeList(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

async function checkKv(dir: string, run: Run, prior: Map<string, number>): Promise<string | undefined> {
  for (const l of run.lines)
    if (l.startsWith('ack ')) {
      const [, key, i] = l.split(' ');
      prior.set(key!, Number(i));
      prior.set('__ops', Number(i));
    }
  const tried = Number(
    run.lines
      .filter((l) => l.startsWith('try '))
      .at(-1)
      ?.split(' ')[2] ?? 0,
  );
  const lastTried = Math.max(tried, prior.get('__tried') ?? 0);
  prior.set('__tried', lastTried);
  const kv = await KvStore.open(dir, { wal: { maxSegmentBytes: 16 * 1024 } });
  try {
    const ops = Number(kv.get('__ops', 0));
    if (ops < (prior.get('__ops') ?? 0)) return `op counter ${ops} below acknowledged ${prior.get('__ops')}`;
    for (const [key, i] of prior) {
      if (key === '__tried') continue;
      const v = Number(kv.get(key, -1));
      if (key !== '__ops' && v < i) return `acknowledged ${key}=${i} lost (found ${v})`;
      if (v > Math.max(lastTried, i)) return `${key}=${v} was never written`;
    }
  } finally {
    await kv.close();
  }
  return undefined;
}

/**
 * Runs `iterations` kill-and-recover rounds of `scenario` in one fresh directory (so
 * later rounds recover from earlier crashes too). Returns the first violation found.
 */
export async function crashRounds(
  scenario: Scenario,
  iterations: number,
  maxWorkMs = 120,
): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), `txkit-crash-${scenario}-`));
  const target = scenario === 'atomic' ? join(dir, 'target.bin') : dir;
  const prior = new Map<string, number>();
  let wal: WalHistory = { tried: new Set(), acked: new Map() };
  const gens: GenHistory = { maxTried: 0 };
  try {
    for (let i = 0; i < iterations; i++) {
      const run = await runAndKill(scenario, target, Math.floor(Math.random() * maxWorkMs));
      const problem =
        scenario === 'atomic'
          ? await checkAtomic(dir, run, gens)
          : scenario === 'wal'
            ? await checkWal(dir, run, wal)
            : scenario === 'fstx'
              ? await checkFsTx(dir, run, gens)
              : await checkKv(dir, run, prior);
      if (problem) return `${scenario} round ${i + 1}: ${problem}`;
      if (scenario === 'wal' && i % 5 === 4) {
        rmSync(dir, { recursive: true, force: true }); // start a fresh log now and then
        wal = { tried: new Set(), acked: new Map() };
      }
    }
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
