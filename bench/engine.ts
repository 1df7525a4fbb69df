/**
 * The engine's own overhead: the same five-statement transaction through `db.transaction()`
 * over a trivial in-memory asynchronous Resource (every call resolves on a microtask), and
 * made directly against that Resource. The difference is what txkit costs per transaction
 * on an asynchronous driver (pg, mysql2), without any network in the way.
 *
 *   npm run build && npx tsx bench/engine.ts      (TXKIT_BENCH_TX=50000 TXKIT_BENCH_ROUNDS=7 to change the size)
 *
 * Rounds alternate between the two so drift in a loaded machine hits both alike; medians of
 * wall time and of this process's CPU time (`process.cpuUsage`) per transaction are printed.
 * The direct side also runs with AsyncLocalStorage's promise hooks enabled (once txkit has
 * run they stay on in the process), as they would be in an application that uses txkit.
 * Promises created per transaction are counted too: each costs an init hook, and the count
 * does not depend on how loaded the machine is.
 */
import { createHook } from 'node:async_hooks';
import { Database } from '../dist/core/database.js';
import { TxkitError } from '../dist/core/errors.js';
import type {
  BeginRequest,
  Capabilities,
  ExecuteResult,
  Resource,
  ResourceTx,
} from '../dist/core/resource.js';

const TX = Number(process.env.TXKIT_BENCH_TX ?? 50_000);
const ROUNDS = Number(process.env.TXKIT_BENCH_ROUNDS ?? 7);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const ROWS = [{ abalance: 0 }];
const DONE: ExecuteResult = { rowsAffected: 1 };

/** A transaction whose every call resolves on a microtask, like a driver that already has the reply. */
class MemoryTx implements ResourceTx {
  readonly isolation = 'read committed' as const;
  readonly readOnly = false;
  query<T>(): Promise<T[]> {
    return Promise.resolve(ROWS as T[]);
  }
  execute(): Promise<ExecuteResult> {
    return Promise.resolve(DONE);
  }
  savepoint(): Promise<void> {
    return Promise.resolve();
  }
  rollbackTo(): Promise<void> {
    return Promise.resolve();
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
  commit(): Promise<void> {
    return Promise.resolve();
  }
  rollback(): Promise<void> {
    return Promise.resolve();
  }
  usableAfterError(): boolean {
    return false;
  }
}

const level = { effective: 'read committed', prevents: [] } as const;
const capabilities: Capabilities = {
  isolation: {
    'read uncommitted': level,
    'read committed': level,
    'repeatable read': level,
    serializable: level,
  },
  defaultIsolation: 'read committed',
  savepoints: true,
  readOnly: true,
  deferrable: false,
  twoPhase: false,
  concurrentTransactions: true,
  statementErrorAbortsTransaction: true,
};

class MemoryResource implements Resource {
  readonly kind = 'memory';
  readonly capabilities = capabilities;
  begin(_req: BeginRequest): Promise<ResourceTx> {
    return Promise.resolve(new MemoryTx());
  }
  query<T>(): Promise<T[]> {
    return Promise.resolve(ROWS as T[]);
  }
  execute(): Promise<ExecuteResult> {
    return Promise.resolve(DONE);
  }
  classify(err: unknown): TxkitError {
    return err instanceof TxkitError ? err : new TxkitError('E_DATABASE', String(err), { cause: err });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const SQL = {
  updAccount: 'UPDATE accounts SET abalance = abalance + $1 WHERE aid = $2',
  selAccount: 'SELECT abalance FROM accounts WHERE aid = $1',
  updTeller: 'UPDATE tellers SET tbalance = tbalance + $1 WHERE tid = $2',
  updBranch: 'UPDATE branches SET bbalance = bbalance + $1 WHERE bid = $2',
  insHistory: 'INSERT INTO history (tid, bid, aid, delta) VALUES ($1, $2, $3, $4)',
};

type Unit = (i: number) => Promise<unknown>;

function viaTxkit(options?: { timeoutMs?: number }): Unit {
  const db = new Database(new MemoryResource());
  return (i) =>
    db.transaction(async (tx) => {
      await tx.execute(SQL.updAccount, [i, i]);
      await tx.query(SQL.selAccount, [i]);
      await tx.execute(SQL.updTeller, [i, 1]);
      await tx.execute(SQL.updBranch, [i, 1]);
      await tx.execute(SQL.insHistory, [1, 1, i, i]);
    }, options);
}

/** What a careful hand-written transaction does: begin, the statements, commit or roll back. */
function direct(): Unit {
  const resource = new MemoryResource();
  const req: BeginRequest = { txId: '', readOnly: false, deferrable: false, suspended: [], extra: {} };
  return async (i) => {
    const t = await resource.begin(req);
    try {
      await t.execute(SQL.updAccount, [i, i]);
      await t.query(SQL.selAccount, [i]);
      await t.execute(SQL.updTeller, [i, 1]);
      await t.execute(SQL.updBranch, [i, 1]);
      await t.execute(SQL.insHistory, [1, 1, i, i]);
      await t.commit();
    } catch (err) {
      await t.rollback();
      throw err;
    }
  };
}

interface Sample {
  wallUs: number;
  cpuUs: number;
}

async function round(unit: Unit): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < TX; i++) await unit(i);
  const wallUs = ((performance.now() - t0) * 1000) / TX;
  const cpu = process.cpuUsage(cpu0);
  return { wallUs, cpuUs: (cpu.user + cpu.system) / TX };
}

/** Promises created per transaction: deterministic, so it shows progress even on a loaded machine. */
async function promisesPerTx(unit: Unit): Promise<number> {
  const N = 1000;
  let count = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') count++;
    },
  }).enable();
  for (let i = 0; i < N; i++) await unit(i);
  hook.disable();
  return count / N;
}

async function main(): Promise<void> {
  const units: Record<string, Unit> = {
    direct: direct(),
    txkit: viaTxkit(),
    'txkit timeoutMs': viaTxkit({ timeoutMs: 5_000 }),
  };
  // Warm every path up (JIT), then alternate.
  for (const u of Object.values(units)) for (let i = 0; i < 20_000; i++) await u(i);
  const promises: Record<string, number> = {};
  for (const [name, unit] of Object.entries(units)) promises[name] = await promisesPerTx(unit);
  const results: Record<string, Sample[]> = Object.fromEntries(Object.keys(units).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, unit] of Object.entries(units)) results[name]!.push(await round(unit));
  }
  const wall = (k: string) => median(results[k]!.map((x) => x.wallUs));
  const cpu = (k: string) => median(results[k]!.map((x) => x.cpuUs));
  const fmt = (n: number) => n.toFixed(2).padStart(8);
  console.log(`engine overhead: 5 statements/tx, ${TX} tx × ${ROUNDS} rounds, in-memory async resource`);
  console.log(
    '                   promises/tx   wall µs/tx   cpu µs/tx   overhead wall   overhead cpu   direct/txkit',
  );
  for (const name of Object.keys(units)) {
    const extra =
      name === 'direct'
        ? ''
        : `   ${fmt(wall(name) - wall('direct'))}        ${fmt(cpu(name) - cpu('direct'))}       ${(wall('direct') / wall(name)).toFixed(3)}`;
    console.log(
      `${name.padEnd(17)}  ${promises[name]!.toFixed(1).padStart(11)}     ${fmt(wall(name))}    ${fmt(cpu(name))}${extra}`,
    );
  }
}

await main();
