/**
 * txkit/fs benchmarks. Run: `npx tsx bench/fs.ts` (not run in CI).
 *
 * 1. atomicWriteFile vs write-file-atomic. write-file-atomic is not installed (and not a
 *    dependency), so this bench re-implements the steps it performs, per its lib/index.js:
 *    realpath, stat the target (mode/owner), open temp `<file>.<hash>`, one write call,
 *    fsync the file, close, chmod, rename. It does NOT fsync the directory, so its rename
 *    may be lost on power failure. txkit's atomicWriteFile does all of that plus the
 *    directory fsync (and loops on short writes).
 * 2. WAL acknowledged appends per second at 1, 8 and 64 concurrent appenders vs a plain
 *    write + fdatasync loop (the disk's fsync rate, i.e. what one-fsync-per-record gets).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicWriteFile } from '../src/fs/atomic-write.js';
import { openWal } from '../src/fs/wal/wal.js';

const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'txkit-bench-fs-'));

/** The steps write-file-atomic performs (no directory fsync). */
let counter = 0;
async function writeFileAtomicSteps(file: string, data: Buffer): Promise<void> {
  const target = await fsp.realpath(file).catch(() => file);
  const st = await fsp.stat(target).catch(() => undefined);
  const tmp = `${target}.${(process.pid * 131 + counter++).toString(16)}${randomBytes(4).toString('hex')}`;
  const fh = await fsp.open(tmp, 'w', st ? st.mode & 0o7777 : 0o666);
  try {
    await fh.write(data, 0, data.length, 0); // one write; write-file-atomic ignores bytesWritten
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (st) await fsp.chmod(tmp, st.mode & 0o7777);
  await fsp.rename(tmp, target);
}

/** Runs `op` with `concurrency` parallel loops for `ms`; returns ops/s. */
async function rate(
  concurrency: number,
  op: (worker: number, i: number) => Promise<void>,
  ms = DURATION_MS,
): Promise<number> {
  let done = 0;
  const end = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        await op(w, i);
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

/**
 * Measures two operations in alternating slices (A, B, A, B, ...) so that a shared,
 * noisy disk drifts over both equally. Returns [rateA, rateB].
 */
async function interleaved(
  concurrency: number,
  a: (w: number, i: number) => Promise<void>,
  b: (w: number, i: number) => Promise<void>,
): Promise<[number, number]> {
  const slices = 10;
  let ra = 0;
  let rb = 0;
  for (let s = 0; s < slices; s++) {
    ra += await rate(concurrency, a, DURATION_MS / slices);
    rb += await rate(concurrency, b, DURATION_MS / slices);
  }
  return [ra / slices, rb / slices];
}

const fmt = (n: number) => n.toFixed(0).padStart(8);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

async function benchAtomic() {
  console.log('\n== atomic replace: 4 KiB, txkit atomicWriteFile vs write-file-atomic steps ==');
  console.log('   txkit: temp + write all + fsync file + rename + fsync DIRECTORY (durable rename)');
  console.log('   write-file-atomic steps: temp + write + fsync file + rename, NO directory fsync');
  const data = randomBytes(4096);
  for (const conc of [1, 8, 32]) {
    const dirA = join(root, `a${conc}`);
    const dirB = join(root, `b${conc}`);
    await fsp.mkdir(dirA);
    await fsp.mkdir(dirB);
    // Each worker replaces its own file, over and over (the common case: a config or state file).
    const [tx, wfa] = await interleaved(
      conc,
      (w) => atomicWriteFile(join(dirA, `f${w}`), data),
      (w) => writeFileAtomicSteps(join(dirB, `f${w}`), data),
    );
    console.log(
      `   ${String(conc).padStart(2)} writer(s): txkit 'full' ${fmt(tx)} writes/s | write-file-atomic steps ${fmt(wfa)} writes/s | ratio ${ratio(tx, wfa)}`,
    );
  }
  console.log(
    "   like for like (no directory fsync on either side): txkit durability 'data' vs write-file-atomic steps",
  );
  for (const conc of [1, 8]) {
    const dirA = join(root, `da${conc}`);
    const dirB = join(root, `db${conc}`);
    await fsp.mkdir(dirA);
    await fsp.mkdir(dirB);
    const [tx, wfa] = await interleaved(
      conc,
      (w) => atomicWriteFile(join(dirA, `f${w}`), data, { durability: 'data' }),
      (w) => writeFileAtomicSteps(join(dirB, `f${w}`), data),
    );
    console.log(
      `   ${String(conc).padStart(2)} writer(s): txkit 'data' ${fmt(tx)} writes/s | write-file-atomic steps ${fmt(wfa)} writes/s | ratio ${ratio(tx, wfa)}`,
    );
  }
}

async function fsyncRate(): Promise<number> {
  const fh = await fsp.open(join(root, 'plain.log'), 'a');
  const rec = randomBytes(64);
  try {
    return await rate(1, async () => {
      await fh.write(rec);
      await fh.datasync();
    });
  } finally {
    await fh.close();
  }
}

async function benchWal() {
  console.log('\n== WAL: acknowledged (fsynced) appends/s, 64-byte payloads ==');
  const base = await fsyncRate();
  console.log(`   plain write + fdatasync loop (the disk's fsync rate): ${fmt(base)} records/s`);
  const payload = randomBytes(64);
  for (const conc of [1, 8, 64]) {
    const wal = await openWal(join(root, `wal${conc}`));
    const r = await rate(conc, async (w, i) => {
      await wal.append({ type: 1, key: `w${w}-${i}`, payload });
    });
    const st = wal.stats();
    await wal.close();
    console.log(
      `   ${String(conc).padStart(2)} appender(s): ${fmt(r)} acked appends/s  = ${ratio(r, base)} the fsync rate  (${(st.appends / st.fsyncs).toFixed(1)} records per fsync)`,
    );
  }
}

try {
  console.log(
    `txkit/fs bench: ${DURATION_MS} ms per measurement in ${root} (node ${process.version}, ${process.platform})`,
  );
  await benchAtomic();
  await benchWal();
} finally {
  rmSync(root, { recursive: true, force: true });
}
