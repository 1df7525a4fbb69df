/**
 * `txkit redis …`: Redis script cache, rate limiter, inventory and pipeline tools.
 *
 *   txkit redis scripts load|exists            the bundled recipe scripts, on every master
 *   txkit redis scripts flush --yes            SCRIPT FLUSH (empties the whole server's script cache)
 *   txkit redis ratelimit check <id> [--window 60s] [--max 100]   exit 1 when denied
 *   txkit redis inventory set <product> <qty>
 *   txkit redis inventory deduct <product> <qty> --order <id> [--user <id>]   exit 1 when refused
 *   txkit redis bench pipeline [--n 1000]      sequential vs pipelined SETs
 *
 * Every command takes `--url` (else `TXKIT_REDIS_URL`, else `REDIS_URL`) and `--json`.
 * Exit codes: 0 OK, 1 operation refused or failed, 2 usage error.
 */
import type { Command } from 'commander';
import { Redis } from 'ioredis';
import { InvalidOptionError } from '../core/errors.js';
import {
  deductStockScript,
  Inventory,
  RateLimiter,
  type RedisTx,
  redisTx,
  slidingWindowScript,
  transferScript,
} from '../redis/index.js';
import { type CommandResult, printResult } from './command-result.js';

export const REDIS_EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface RedisCliOptions {
  url?: string;
  json?: boolean;
}

const BUNDLED = [deductStockScript, transferScript, slidingWindowScript];

function urlOf(opts: RedisCliOptions): string {
  const url = opts.url ?? process.env.TXKIT_REDIS_URL ?? process.env.REDIS_URL;
  if (!url) throw new InvalidOptionError('no server given: pass --url or set TXKIT_REDIS_URL / REDIS_URL');
  return url;
}

/** Parses `500ms`, `30s`, `2m`, `1h` or a bare number of milliseconds. */
export function parseWindow(text: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!m)
    throw new InvalidOptionError(`invalid duration ${JSON.stringify(text)}: use e.g. 500ms, 30s, 2m, 1h`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'];
}

function positiveInt(name: string, text: string | undefined, fallback?: number): number {
  if (text === undefined && fallback !== undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidOptionError(`${name} must be an integer >= 0, got ${text}`);
  return n;
}

async function withTx<T>(opts: RedisCliOptions, fn: (tx: RedisTx) => Promise<T>): Promise<T> {
  const client = new Redis(urlOf(opts), { lazyConnect: true, maxRetriesPerRequest: 1 });
  const tx = redisTx(client);
  try {
    return await fn(tx);
  } finally {
    await tx.close();
    client.disconnect();
  }
}

const json = (v: unknown) => JSON.stringify(v);

export async function scriptsCommand(
  action: string,
  opts: RedisCliOptions & { yes?: boolean },
): Promise<CommandResult> {
  if (!['load', 'exists', 'flush'].includes(action)) {
    return { exitCode: REDIS_EXIT.usage, lines: [`unknown action '${action}': use load, exists or flush`] };
  }
  if (action === 'flush' && !opts.yes) {
    return {
      exitCode: REDIS_EXIT.usage,
      lines: [
        'SCRIPT FLUSH empties the script cache of the whole server (every master in a cluster),',
        'including scripts of other applications; they recover only if they fall back to EVAL.',
        'Run again with --yes to do it.',
      ],
    };
  }
  return withTx(opts, async (tx) => {
    for (const s of BUNDLED) tx.scripts.add(s);
    if (action === 'flush') {
      await tx.scripts.flush();
      return {
        exitCode: REDIS_EXIT.ok,
        lines: [opts.json ? json({ flushed: true }) : 'script cache flushed'],
      };
    }
    const rows: Array<{ name: string; sha: string; loaded: boolean[] }> = [];
    for (const s of BUNDLED) {
      if (action === 'load') await tx.scripts.load(s);
      rows.push({ name: s.name, sha: s.sha, loaded: await tx.scripts.exists(s) });
    }
    if (opts.json) return { exitCode: REDIS_EXIT.ok, lines: rows.map(json) };
    return {
      exitCode: REDIS_EXIT.ok,
      lines: rows.map(
        (r) => `${r.name.padEnd(26)} ${r.sha}  ${r.loaded.map((l) => (l ? 'loaded' : 'missing')).join(' ')}`,
      ),
    };
  });
}

export async function ratelimitCommand(
  id: string,
  opts: RedisCliOptions & { window?: string; max?: string },
): Promise<CommandResult> {
  const windowMs = parseWindow(opts.window ?? '60s');
  const max = positiveInt('--max', opts.max, 100);
  return withTx(opts, async (tx) => {
    const d = await new RateLimiter(tx, { windowMs, max }).check(id);
    const exitCode = d.allowed ? REDIS_EXIT.ok : REDIS_EXIT.failed;
    if (opts.json) return { exitCode, lines: [json(d)] };
    return {
      exitCode,
      lines: [
        d.allowed
          ? `allowed (${d.count}/${max} in the window, ${d.remaining} left)`
          : `denied (${d.count}/${max}); retry after ${d.retryAfterMs} ms`,
      ],
    };
  });
}

export async function inventoryCommand(
  action: string,
  product: string,
  qty: string,
  opts: RedisCliOptions & { order?: string; user?: string },
): Promise<CommandResult> {
  const quantity = positiveInt('quantity', qty);
  return withTx(opts, async (tx) => {
    const inventory = new Inventory(tx);
    if (action === 'set') {
      await inventory.set(product, quantity);
      return {
        exitCode: REDIS_EXIT.ok,
        lines: [opts.json ? json({ product, stock: quantity }) : `${product}: ${quantity}`],
      };
    }
    if (action !== 'deduct') {
      return { exitCode: REDIS_EXIT.usage, lines: [`unknown action '${action}': use set or deduct`] };
    }
    if (!opts.order)
      return { exitCode: REDIS_EXIT.usage, lines: ['deduct needs --order <id> (its idempotency key)'] };
    const r = await inventory.deduct({
      productId: product,
      quantity,
      userId: opts.user ?? 'cli',
      orderId: opts.order,
    });
    const exitCode = r.ok ? REDIS_EXIT.ok : REDIS_EXIT.failed;
    if (opts.json) return { exitCode, lines: [json(r)] };
    return {
      exitCode,
      lines: [r.ok ? `deducted ${quantity}: ${r.previous} -> ${r.remaining}` : `refused: ${r.reason}`],
    };
  });
}

export async function benchPipelineCommand(opts: RedisCliOptions & { n?: string }): Promise<CommandResult> {
  const n = positiveInt('--n', opts.n, 1000);
  return withTx(opts, async (tx) => {
    const raw = new Redis(urlOf(opts));
    try {
      const key = `txkit:bench:${process.pid}`;
      let t = performance.now();
      for (let i = 0; i < n; i++) await raw.set(`${key}:s${i}`, 'v');
      const sequentialMs = performance.now() - t;
      t = performance.now();
      await tx.pipeline((p) => {
        for (let i = 0; i < n; i++) p.set(`${key}:p${i}`, 'v');
      });
      const pipelineMs = performance.now() - t;
      await tx.pipeline((p) => {
        for (let i = 0; i < n; i++) p.del(`${key}:s${i}`, `${key}:p${i}`);
      });
      const r = { n, sequentialMs, pipelineMs, speedup: sequentialMs / pipelineMs };
      if (opts.json) return { exitCode: REDIS_EXIT.ok, lines: [json(r)] };
      return {
        exitCode: REDIS_EXIT.ok,
        lines: [
          `sequential: ${n} SETs in ${sequentialMs.toFixed(1)} ms (${((n / sequentialMs) * 1000).toFixed(0)} ops/s)`,
          `pipeline:   ${n} SETs in ${pipelineMs.toFixed(1)} ms (${((n / pipelineMs) * 1000).toFixed(0)} ops/s)`,
          `speed-up:   ${r.speedup.toFixed(1)}x`,
        ],
      };
    } finally {
      raw.disconnect();
    }
  });
}

const run = (command: () => Promise<CommandResult>) => () =>
  printResult(command, (err) => (err instanceof InvalidOptionError ? REDIS_EXIT.usage : REDIS_EXIT.failed));

/** Adds `txkit redis …` to the program. */
export function register(program: Command): void {
  const redis = program
    .command('redis')
    .description('Redis transactions: scripts, rate limiter, inventory, bench');
  const common = (c: Command) => c.option('--url <url>', 'redis://host:port').option('--json', 'print JSON');
  common(
    redis
      .command('scripts <action>')
      .description('load | exists | flush the bundled recipe scripts (flush needs --yes)')
      .option('--yes', 'confirm SCRIPT FLUSH'),
  ).action((action: string, o: RedisCliOptions & { yes?: boolean }) =>
    run(() => scriptsCommand(action, o))(),
  );
  const ratelimit = redis.command('ratelimit').description('sliding-window rate limiter');
  common(
    ratelimit
      .command('check <id>')
      .description('count one request for <id>; exit 1 when denied')
      .option('--window <duration>', 'window length, e.g. 60s', '60s')
      .option('--max <n>', 'requests per window', '100'),
  ).action((id: string, o: RedisCliOptions & { window?: string; max?: string }) =>
    run(() => ratelimitCommand(id, o))(),
  );
  common(
    redis
      .command('inventory <action> <product> <quantity>')
      .description('set stock, or deduct it once per --order id; exit 1 when refused')
      .option('--order <id>', 'order id (idempotency key) for deduct')
      .option('--user <id>', 'user id recorded with the order'),
  ).action(
    (action: string, product: string, qty: string, o: RedisCliOptions & { order?: string; user?: string }) =>
      run(() => inventoryCommand(action, product, qty, o))(),
  );
  const bench = redis.command('bench').description('quick benchmarks');
  common(
    bench
      .command('pipeline')
      .description('sequential vs pipelined SETs')
      .option('--n <count>', 'commands', '1000'),
  ).action((o: RedisCliOptions & { n?: string }) => run(() => benchPipelineCommand(o))());
}
