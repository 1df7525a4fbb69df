/**
 * Named Lua scripts, run by EVALSHA with NOSCRIPT recovery.
 *
 * The server's script cache is volatile: restart, failover and `SCRIPT FLUSH` empty it.
 * `run()` sends EVALSHA and, on NOSCRIPT (which means the script did not run), sends the
 * body once with EVAL, which also caches it again. Inside MULTI and pipelines a NOSCRIPT
 * could not be recovered (it arrives after the batch is final), so there the first use of
 * a script in each batch is sent as EVAL and later uses as EVALSHA; see `CommandBuilder.run`.
 */
import { ConnectionLostError, InvalidArgumentError, TxkitError } from '../core/errors.js';
import type { RedisArg } from './commands.js';
import { makeCommand } from './commands.js';
import { canWrite, type RedisClient } from './connection.js';
import type { RedisContext } from './context.js';
import { isReplyError, replyCode, ScriptError, TransactionOutcomeUnknownError } from './errors.js';
import { commonSlot } from './key-slot.js';
import { checkScriptKeys, defineScript, type Script, type ScriptDefinition } from './script.js';

export interface ScriptInfo {
  sha: string;
  content: string;
  /** When `load()` last put it in the server's cache from this registry (ms since epoch), if ever. */
  loadedAt: number | undefined;
}

export interface RunChunkedOptions {
  /** ARGV entries per call. Default 100. */
  chunkSize?: number;
}

export class ScriptRegistry {
  readonly #scripts = new Map<string, Script<unknown>>();
  readonly #loadedAt = new Map<string, number>();

  constructor(private readonly ctx: RedisContext) {}

  /**
   * Defines (or returns the identical existing) script under `name`.
   *
   * @example
   * const mul = tx.scripts.define('mul', { numberOfKeys: 2, lua: "return tonumber(redis.call('GET', KEYS[1])) * tonumber(redis.call('GET', KEYS[2]))" });
   * await tx.scripts.run(mul, ['a', 'b']);
   */
  define<T = unknown>(name: string, def: ScriptDefinition<T>): Script<T> {
    const existing = this.#scripts.get(name);
    const script = defineScript(name, def);
    if (existing && existing.sha !== script.sha) {
      throw new InvalidArgumentError(`script '${name}' is already defined with a different body`);
    }
    this.#scripts.set(name, script as Script<unknown>);
    return script;
  }

  /** Adds an already-defined script (e.g. a bundled recipe). */
  add<T>(script: Script<T>): Script<T> {
    const existing = this.#scripts.get(script.name);
    if (existing && existing.sha !== script.sha) {
      throw new InvalidArgumentError(`script '${script.name}' is already defined with a different body`);
    }
    this.#scripts.set(script.name, script as Script<unknown>);
    return script;
  }

  /** The script called `name`, or undefined. */
  get(name: string): Script<unknown> | undefined {
    return this.#scripts.get(name);
  }

  /** `{sha, content, loadedAt}` for every defined script. */
  info(): Record<string, ScriptInfo> {
    const out: Record<string, ScriptInfo> = {};
    for (const [name, s] of this.#scripts) {
      out[name] = { sha: s.sha, content: s.lua, loadedAt: this.#loadedAt.get(name) };
    }
    return out;
  }

  #resolve<T>(script: Script<T> | string): Script<T> {
    const found = typeof script === 'string' ? this.#scripts.get(script) : script;
    if (!found) throw new InvalidArgumentError(`no script named '${String(script)}' is defined`);
    return found as Script<T>;
  }

  /** The connections a cache operation must reach: every master in cluster mode. */
  async #targets(): Promise<RedisClient[]> {
    const conn = await this.ctx.shared();
    if ('nodes' in conn && typeof conn.nodes === 'function' && this.ctx.isCluster)
      return conn.nodes('master');
    return [conn];
  }

  /** SCRIPT LOAD on every master. */
  async load(script: Script<unknown> | string): Promise<void> {
    const s = this.#resolve(script);
    for (const node of await this.#targets()) await node.script('LOAD', s.lua);
    this.#loadedAt.set(s.name, Date.now());
  }

  /** SCRIPT EXISTS per master (one boolean per node). */
  async exists(script: Script<unknown> | string): Promise<boolean[]> {
    const s = this.#resolve(script);
    const out: boolean[] = [];
    for (const node of await this.#targets()) {
      const [found] = (await node.script('EXISTS', s.sha)) as number[];
      out.push(found === 1);
    }
    return out;
  }

  /** SCRIPT FLUSH on every master: empties the whole server's script cache (admin only). */
  async flush(): Promise<void> {
    for (const node of await this.#targets()) await node.script('FLUSH');
    this.#loadedAt.clear();
  }

  /**
   * Runs a script by EVALSHA; on NOSCRIPT sends EVAL once. A script error throws
   * {@link ScriptError} (writes it made before failing persist). A lost reply throws
   * {@link TransactionOutcomeUnknownError}: the script may have run.
   */
  async run<T>(
    script: Script<T> | string,
    keys: readonly RedisArg[] = [],
    args: readonly RedisArg[] = [],
  ): Promise<T> {
    const s = this.#resolve(script);
    checkScriptKeys(s, keys);
    makeCommand('evalsha', [...keys, ...args]);
    if (this.ctx.isCluster) commonSlot(keys.map(String));
    const conn = await this.ctx.shared();
    if (!canWrite(conn)) {
      throw new ConnectionLostError(`connection is ${conn.status}; script '${s.name}' was not sent`, {
        retryable: true,
      });
    }
    let raw: unknown;
    try {
      raw = await conn.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (replyCode(err) !== 'NOSCRIPT') throw this.#fail(s, err);
      this.ctx.metrics.inc('redis_script_noscript_fallbacks_total', { script: s.name });
      this.ctx.events.emit('noscript', { script: s.name });
      try {
        raw = await conn.eval(s.lua, keys.length, ...keys, ...args);
      } catch (evalErr) {
        throw this.#fail(s, evalErr);
      }
    }
    return s.decode ? s.decode(raw) : (raw as T);
  }

  #fail(s: Script<unknown>, err: unknown): Error {
    if (isReplyError(err)) return new ScriptError(s.name, err);
    if (err instanceof TxkitError) return err;
    return new TransactionOutcomeUnknownError(
      `no reply from script '${s.name}': it may or may not have run`,
      {
        cause: err,
      },
    );
  }

  /**
   * Runs a script once per chunk of `argList` (default 100 entries), passing the same real
   * `keys` each time. Each chunk is atomic; the whole is **not**.
   */
  async runChunked<T>(
    script: Script<T> | string,
    keys: readonly RedisArg[],
    argList: readonly RedisArg[],
    options: RunChunkedOptions = {},
  ): Promise<T[]> {
    const size = options.chunkSize ?? 100;
    if (!Number.isInteger(size) || size < 1) {
      throw new InvalidArgumentError(`chunkSize must be an integer >= 1, got ${String(size)}`);
    }
    const out: T[] = [];
    for (let i = 0; i < argList.length; i += size)
      out.push(await this.run(script, keys, argList.slice(i, i + size)));
    return out;
  }
}
