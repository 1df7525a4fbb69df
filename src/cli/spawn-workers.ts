/**
 * Starts transfer workers as separate processes, releases them together (so they really
 * contend for the database), and collects their reports.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BeginMode } from '../sql/sqlite/options.js';
import type { WorkerReport } from './transfer-worker.js';

export async function runWorkers(
  file: string,
  workers: number,
  transfersPerWorker: number,
  beginMode: BeginMode,
): Promise<WorkerReport[]> {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith('.ts');
  const script = join(here, '..', fromSource ? 'transfer-worker.ts' : 'transfer-worker.js');
  const children = Array.from({ length: workers }, (_, i) => {
    const args = [
      ...(fromSource ? ['--import', 'tsx'] : []),
      script,
      file,
      String(transfersPerWorker),
      String(i + 1),
      beginMode,
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TXKIT_WORKER_BARRIER: '1' },
    });
    let out = '';
    let err = '';
    let signalReady!: () => void;
    const ready = new Promise<void>((r) => {
      signalReady = r;
    });
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (out.startsWith('ready\n')) signalReady();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    const done = new Promise<WorkerReport>((resolve, reject) => {
      child.on('exit', (code) => {
        signalReady();
        if (code === 0) resolve(JSON.parse(out.slice('ready\n'.length)) as WorkerReport);
        else reject(new Error(`worker ${i + 1} exited with ${code}: ${err}`));
      });
    });
    return { child, ready, done };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.child.stdin.end('go\n');
  return Promise.all(children.map((c) => c.done));
}
