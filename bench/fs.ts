/**
 * txkit/fs benchmarks. Run: `npm run bench:fs` (not run in CI).
 *
 * 1. atomicWriteFile vs write-file-atomic (a devDependency, the version that supports Node
 *    20), same data. write-file-atomic: realpath, stat the target, open a temp file, one
 *    write, fsync, close, chown + chmod to the old owner/mode, rename, unlink the temp name.
 *    It does NOT fsync the directory, so its rename may be lost on power failure. txkit's
 *    atomicWriteFile does the same work with fdatasync (and loops on short writes), then
 *    fsyncs the directory: a second device flush per replace, shared by concurrent writers
 *    in one directory.
 * 2. WAL acknowledged appends per second at 1, 8 and 64 concurrent appenders vs a plain
 *    write + fdatasync loop (the disk's fsync rate, i.e. what one-fsync-per-record gets).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { atomicWriteFile } from '../dist/fs/atomic-write.js';
import { openWal } from '../dist/fs/wal/wal.js';

const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const root = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'txkit-bench-fs-'));

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
  console.log('\n== atomic replace: 4 KiB, txkit atomicWriteFile vs write-file-atomic ==');
  console.log('   txkit: temp + write all + fsync file + rename + fsync DIRECTORY (durable rename)');
  console.log('   write-file-atomic: temp + write + fsync file + chown/chmod + rename, NO directory fsync');
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
      (w) => writeFileAtomic(join(dirB, `f${w}`), data),
    );
    console.log(
      `   ${String(conc).padStart(2)} writer(s): txkit 'full' ${fmt(tx)} writes/s | write-file-atomic ${fmt(wfa)} writes/s | ratio ${ratio(tx, wfa)}`,
    );
  }
  console.log(
    "   like for like (no directory fsync on either side): txkit durability 'data' vs write-file-atomic",
  );
  for (const conc of [1, 8]) {
    const dirA = join(root, `da${conc}`);
    const dirB = join(root, `db${conc}`);
    await fsp.mkdir(dirA);
    await fsp.mkdir(dirB);
    const [tx, wfa] = await interleaved(
      conc,
      (w) => atomicWriteFile(join(dirA, `f${w}`), data, { durability: 'data' }),
      (w) => writeFileAtomic(join(dirB, `f${w}`), data),
    );
    console.log(
      `   ${String(conc).padStart(2)} writer(s): txkit 'data' ${fmt(tx)} writes/s | write-file-atomic ${fmt(wfa)} writes/s | ratio ${ratio(tx, wfa)}`,
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
