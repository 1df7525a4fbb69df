/**
 * A MariaDB/MySQL server for the tests: `TXKIT_MYSQL_URL` when set, otherwise a private
 * throwaway MariaDB in a temp dir on a free loopback port (when `mariadbd` is installed),
 * otherwise undefined.
 *
 * The private instance gets three users (never root in tests):
 * - `txkit`: all on `test.*`, PROCESS (diagnostics) and XA RECOVER rights;
 * - `txkit_noproc`: all on `test.*` only, for the degraded-diagnostics path;
 * - `txkit_admin`: everything, for SET GLOBAL and server-wide checks.
 *
 * Fault tests restart it with {@link restartPrivateServer}, which reads what it needs
 * from the environment the global setup exported.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StartedServer } from './global-setup.js';

const BINARIES = ['/usr/sbin/mariadbd', '/usr/sbin/mysqld'];

/** Environment variable names exported to the test workers. */
export const MYSQL_ENV = {
  url: 'TXKIT_MYSQL_URL',
  noProcessUrl: 'TXKIT_MYSQL_NOPROC_URL',
  adminUrl: 'TXKIT_MYSQL_ADMIN_URL',
  /** JSON: `{ binary, args, pidFile, socket, port }` — only for the private instance. */
  private: 'TXKIT_MYSQL_PRIVATE',
} as const;

interface PrivateInfo {
  binary: string;
  args: string[];
  pidFile: string;
  socket: string;
  port: number;
  dir: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`)),
    );
    // The child may exit before reading its input (e.g. a failed readiness probe).
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) until `probe` is true, checking every 20 ms. */
async function until(probe: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Starts the server process described by `info` and waits until it accepts connections. */
async function launch(info: PrivateInfo): Promise<void> {
  const child = spawn(info.binary, info.args, { detached: true, stdio: 'ignore' });
  child.unref();
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  await until(
    async () => {
      if (exited) throw new Error(`mariadbd exited at start; see ${join(info.dir, 'error.log')}`);
      if (!existsSync(info.socket)) return false;
      try {
        await run('mariadb', ['--no-defaults', '-S', info.socket, '-uroot', '-e', 'SELECT 1']);
        return true;
      } catch {
        return false;
      }
    },
    30_000,
    'mariadbd to accept connections',
  );
}

/** Stops the server: SIGTERM (clean shutdown) or SIGKILL (crash), and waits for it to exit. */
async function halt(info: PrivateInfo, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const pid = readPid(info.pidFile);
  if (pid === undefined || !alive(pid)) return;
  process.kill(pid, signal);
  await until(() => !alive(pid), 60_000, `mariadbd ${pid} to exit`);
  // A killed server leaves its socket and pid file behind; the next start replaces them.
  if (signal === 'SIGKILL') rmSync(info.socket, { force: true });
}

function privateInfo(): PrivateInfo {
  const raw = process.env[MYSQL_ENV.private];
  if (!raw) throw new Error('no private MariaDB instance (TXKIT_MYSQL_URL points at an external server)');
  return JSON.parse(raw) as PrivateInfo;
}

/** True when the tests run against the private instance, so they may restart it. */
export function canRestartServer(): boolean {
  return process.env[MYSQL_ENV.private] !== undefined;
}

/**
 * Restarts the private instance: `crash` kills it with SIGKILL (no clean shutdown), the
 * default shuts it down cleanly. Resolves once it accepts connections again.
 */
export async function restartPrivateServer(opts: { crash?: boolean } = {}): Promise<void> {
  const info = privateInfo();
  await halt(info, opts.crash ? 'SIGKILL' : 'SIGTERM');
  await launch(info);
}

export async function startServer(): Promise<StartedServer | undefined> {
  const external = process.env[MYSQL_ENV.url];
  if (external) {
    const env: Record<string, string> = { [MYSQL_ENV.url]: external };
    for (const key of [MYSQL_ENV.noProcessUrl, MYSQL_ENV.adminUrl]) {
      const v = process.env[key];
      if (v) env[key] = v;
    }
    return { env, stop: async () => {} };
  }
  if (!canStartPrivateInstance()) return undefined;
  const instance = await startPrivateInstance();
  return { env: instance.env, stop: () => instance.stop() };
}

/** A private MariaDB instance: its env (URLs), and restart / stop controls. */
export interface PrivateInstance {
  env: Record<string, string>;
  /** Restart: `crash` kills with SIGKILL (no clean shutdown); resolves when it accepts connections. */
  restart(opts?: { crash?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

/** Finds an executable on PATH. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .some((dir) => dir !== '' && existsSync(join(dir, name)));
}

/** True when MariaDB's server, installer and client are installed, so a private instance can be started. */
export function canStartPrivateInstance(): boolean {
  return BINARIES.some((b) => existsSync(b)) && onPath('mariadb-install-db') && onPath('mariadb');
}

/**
 * Starts a throwaway MariaDB in a temp dir on a free loopback port, with the test users
 * (`extraArgs`: more server options, e.g. `--innodb-rollback-on-timeout=ON`).
 * Tests that restart a server start their own with this, so they never disturb the
 * instance that other test files share.
 */
export async function startPrivateInstance(opts: { extraArgs?: string[] } = {}): Promise<PrivateInstance> {
  const binary = BINARIES.find((b) => existsSync(b));
  if (!binary || !canStartPrivateInstance()) {
    throw new Error('MariaDB is not installed (needs mariadbd, mariadb-install-db and the mariadb client)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'txkit-mariadb-'));
  const dataDir = join(dir, 'data');
  // mariadbd refuses to run as root; the Debian package's `mysql` user owns the files.
  const user = process.getuid?.() === 0 ? 'mysql' : (process.env.USER ?? 'mysql');
  if (process.getuid?.() === 0) await run('chown', [`${user}:${user}`, dir]);
  await run('mariadb-install-db', [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--user=${user}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  const argsFor = (info: PrivateInfo): string[] => [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--socket=${info.socket}`,
    `--port=${info.port}`,
    '--bind-address=127.0.0.1',
    `--user=${user}`,
    `--pid-file=${info.pidFile}`,
    `--log-error=${join(dir, 'error.log')}`,
    '--skip-name-resolve',
    '--skip-log-bin',
    '--innodb-buffer-pool-size=64M',
    '--innodb-log-file-size=32M',
    '--max-connections=300',
    ...(opts.extraArgs ?? []),
  ];
  const info: PrivateInfo = {
    binary,
    dir,
    port: 0,
    socket: join(dir, 'mysqld.sock'),
    pidFile: join(dir, 'mysqld.pid'),
    args: [],
  };
  // The free port may be taken between probing and binding: try another one.
  for (let attempt = 1; ; attempt++) {
    info.port = await freePort();
    info.args = argsFor(info);
    try {
      await launch(info);
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  const port = info.port;

  const password = 'txkit-test-pw';
  const sql = `
    CREATE DATABASE IF NOT EXISTS test;
    CREATE USER 'txkit'@'127.0.0.1' IDENTIFIED BY '${password}';
    GRANT ALL ON test.* TO 'txkit'@'127.0.0.1';
    GRANT PROCESS, BINLOG MONITOR ON *.* TO 'txkit'@'127.0.0.1';
    CREATE USER 'txkit_noproc'@'127.0.0.1' IDENTIFIED BY '${password}';
    GRANT ALL ON test.* TO 'txkit_noproc'@'127.0.0.1';
    CREATE USER 'txkit_admin'@'127.0.0.1' IDENTIFIED BY '${password}';
    GRANT ALL ON *.* TO 'txkit_admin'@'127.0.0.1' WITH GRANT OPTION;
  `;
  await run('mariadb', ['--no-defaults', '-S', info.socket, '-uroot'], sql);

  const url = (u: string) => `mysql://${u}:${password}@127.0.0.1:${port}/test`;
  return {
    env: {
      [MYSQL_ENV.url]: url('txkit'),
      [MYSQL_ENV.noProcessUrl]: url('txkit_noproc'),
      [MYSQL_ENV.adminUrl]: url('txkit_admin'),
      [MYSQL_ENV.private]: JSON.stringify(info),
    },
    async restart(opts: { crash?: boolean } = {}) {
      await halt(info, opts.crash ? 'SIGKILL' : 'SIGTERM');
      await launch(info);
    },
    async stop() {
      await halt(info, 'SIGTERM').catch(() => halt(info, 'SIGKILL'));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
