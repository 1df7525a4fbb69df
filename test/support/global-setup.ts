/**
 * Starts the real servers the test suites need, once per run, and tells the test
 * workers where they are through environment variables (workers inherit them).
 *
 * Each backend has a `test/support/<name>-server.ts` module exporting
 * `startServer(): Promise<StartedServer | undefined>`. It uses the backend's
 * `TXKIT_*_URL` when set, otherwise starts a private throwaway instance on a free
 * loopback port when the binaries are installed, otherwise returns undefined: the
 * backend's tests are then skipped with one line, except under CI=true where a missing
 * server fails the run.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface StartedServer {
  /** Environment variables the test workers need (URL, data dir for restarts, ...). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const BACKENDS = ['postgres', 'mysql', 'redis'] as const;
const started: StartedServer[] = [];

export async function setup(): Promise<void> {
  const wanted = process.env.TXKIT_BACKENDS?.split(',') ?? BACKENDS;
  for (const name of BACKENDS) {
    if (!wanted.includes(name)) continue;
    const file = fileURLToPath(new URL(`./${name}-server.ts`, import.meta.url));
    if (!existsSync(file)) continue;
    const mod = (await import(file)) as { startServer(): Promise<StartedServer | undefined> };
    let server: StartedServer | undefined;
    try {
      server = await mod.startServer();
    } catch (err) {
      await teardown(); // a failed setup gets no teardown call: stop what already started
      throw err;
    }
    if (!server) {
      if (process.env.CI === 'true') {
        throw new Error(`CI=true and no ${name} server could be had: install it or set its TXKIT_*_URL`);
      }
      console.log(`[txkit tests] no ${name} server available: its tests are skipped`);
      continue;
    }
    Object.assign(process.env, server.env);
    started.push(server);
  }
}

export async function teardown(): Promise<void> {
  for (const server of started.splice(0).reverse()) await server.stop().catch(() => {});
}
