/**
 * Client-side command buffer shared by transactions (MULTI/EXEC) and pipelines. Nothing
 * reaches the server until the owner sends the whole buffer.
 */
import { type ChainableCommander, Command } from 'ioredis';
import { InvalidArgumentError, RawTransactionControlError } from '../core/errors.js';
import { checkScriptKeys, type Script } from './script.js';

/** A command argument as Redis receives it. */
export type RedisArg = string | number | Buffer;

/** One buffered command. `script` is set for script runs (sent as EVAL or EVALSHA). */
export interface QueuedCommand {
  readonly name: string;
  readonly args: readonly RedisArg[];
  readonly script?: Script<unknown>;
  /** The keys of a script run (other commands' keys are derived from their arguments). */
  readonly keys?: readonly RedisArg[];
}

/** Commands that would break the transaction protocol txkit drives itself. */
const CONTROL = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch', 'quit', 'reset', 'select']);
const COMMAND_NAME = /^[A-Za-z][A-Za-z0-9_|.-]*$/;

export function checkArg(command: string, arg: unknown, i: number): asserts arg is RedisArg {
  if (typeof arg === 'string' || Buffer.isBuffer(arg)) return;
  if (typeof arg === 'number' && Number.isFinite(arg)) return;
  throw new InvalidArgumentError(
    `${command}: argument ${i} must be a string, a Buffer or a finite number, got ${arg === null ? 'null' : typeof arg}`,
  );
}

/** Validates a raw command; rejects transaction control commands txkit must drive itself. */
export function makeCommand(name: string, args: readonly unknown[]): QueuedCommand {
  if (typeof name !== 'string' || !COMMAND_NAME.test(name)) {
    throw new InvalidArgumentError(
      `command name must be a word like 'set' or 'hincrby', got ${JSON.stringify(name)}`,
    );
  }
  const lower = name.toLowerCase();
  if (CONTROL.has(lower)) {
    throw new RawTransactionControlError(
      `${name.toUpperCase()} cannot be queued: txkit sends MULTI/EXEC/WATCH itself ` +
        '(use redisTx().multi(), optimistic() or a dedicated connection)',
    );
  }
  for (let i = 0; i < args.length; i++) checkArg(lower, args[i], i);
  return { name: lower, args: args as RedisArg[] };
}

/**
 * Buffers commands. The named methods cover the common commands; `call()` takes any other.
 *
 * @example
 * m.set('stock:1', 10).hset('order:9', { qty: 2 }).expire('order:9', 86_400).call('xadd', 's', '*', 'f', 'v');
 */
export class CommandBuilder {
  /** @internal the buffer, in queue order */
  readonly queued: QueuedCommand[] = [];

  /** Hook for subclasses that refuse commands after they were sent. */
  protected beforeAdd(): void {}

  /** Queues any command, e.g. `call('xadd', 'stream', '*', 'field', 'value')`. */
  call(name: string, ...args: RedisArg[]): this {
    this.beforeAdd();
    this.queued.push(makeCommand(name, args));
    return this;
  }

  /** Queues a command whose name is known to be valid (the named methods). */
  #add(name: string, args: RedisArg[]): this {
    this.beforeAdd();
    for (let i = 0; i < args.length; i++) checkArg(name, args[i], i);
    this.queued.push({ name, args });
    return this;
  }

  /** Queues a script run. Inside MULTI the first use is sent as EVAL, so NOSCRIPT cannot occur. */
  run(script: Script<unknown>, keys: readonly RedisArg[] = [], args: readonly RedisArg[] = []): this {
    this.beforeAdd();
    checkScriptKeys(script, keys);
    for (let i = 0; i < keys.length; i++) checkArg(script.name, keys[i], i);
    for (let i = 0; i < args.length; i++) checkArg(script.name, args[i], keys.length + i);
    this.queued.push({ name: 'evalsha', args: [script.sha, keys.length, ...keys, ...args], script, keys });
    return this;
  }

  get(key: RedisArg): this {
    return this.#add('get', [key]);
  }
  /** `SET key value [options…]`, e.g. `set('k', 'v', 'EX', 60, 'NX')`. */
  set(key: RedisArg, value: RedisArg, ...options: RedisArg[]): this {
    return this.#add('set', [key, value, ...options]);
  }
  del(...keys: RedisArg[]): this {
    return this.#add('del', [...keys]);
  }
  exists(...keys: RedisArg[]): this {
    return this.#add('exists', [...keys]);
  }
  incr(key: RedisArg): this {
    return this.#add('incr', [key]);
  }
  incrby(key: RedisArg, by: number): this {
    return this.#add('incrby', [key, by]);
  }
  decr(key: RedisArg): this {
    return this.#add('decr', [key]);
  }
  decrby(key: RedisArg, by: number): this {
    return this.#add('decrby', [key, by]);
  }
  append(key: RedisArg, value: RedisArg): this {
    return this.#add('append', [key, value]);
  }
  mget(...keys: RedisArg[]): this {
    return this.#add('mget', [...keys]);
  }
  mset(pairs: Record<string, RedisArg>): this {
    return this.#add('mset', [...Object.entries(pairs).flat()]);
  }
  expire(key: RedisArg, seconds: number): this {
    return this.#add('expire', [key, seconds]);
  }
  pexpire(key: RedisArg, ms: number): this {
    return this.#add('pexpire', [key, ms]);
  }
  /** `HSET key field value …` from an object: one command for all fields. */
  hset(key: RedisArg, fields: Record<string, RedisArg>): this {
    return this.#add('hset', [key, ...Object.entries(fields).flat()]);
  }
  hget(key: RedisArg, field: RedisArg): this {
    return this.#add('hget', [key, field]);
  }
  hgetall(key: RedisArg): this {
    return this.#add('hgetall', [key]);
  }
  hincrby(key: RedisArg, field: RedisArg, by: number): this {
    return this.#add('hincrby', [key, field, by]);
  }
  hdel(key: RedisArg, ...fields: RedisArg[]): this {
    return this.#add('hdel', [key, ...fields]);
  }
  sadd(key: RedisArg, ...members: RedisArg[]): this {
    return this.#add('sadd', [key, ...members]);
  }
  srem(key: RedisArg, ...members: RedisArg[]): this {
    return this.#add('srem', [key, ...members]);
  }
  lpush(key: RedisArg, ...values: RedisArg[]): this {
    return this.#add('lpush', [key, ...values]);
  }
  rpush(key: RedisArg, ...values: RedisArg[]): this {
    return this.#add('rpush', [key, ...values]);
  }
  ltrim(key: RedisArg, start: number, stop: number): this {
    return this.#add('ltrim', [key, start, stop]);
  }
  lrange(key: RedisArg, start: number, stop: number): this {
    return this.#add('lrange', [key, start, stop]);
  }
  zadd(key: RedisArg, score: number, member: RedisArg): this {
    return this.#add('zadd', [key, score, member]);
  }
  zrem(key: RedisArg, ...members: RedisArg[]): this {
    return this.#add('zrem', [key, ...members]);
  }
  zcard(key: RedisArg): this {
    return this.#add('zcard', [key]);
  }
}

/**
 * Adds `commands` to an ioredis pipeline. The first run of each script in this batch is
 * sent as EVAL (which also caches it), later runs as EVALSHA: the batch runs in order on
 * one connection, so NOSCRIPT cannot occur even right after `SCRIPT FLUSH`.
 */
export function appendCommands(pipeline: ChainableCommander, commands: readonly QueuedCommand[]): void {
  const sent = new Set<string>();
  for (const cmd of commands) {
    if (cmd.script && !sent.has(cmd.script.sha)) {
      sent.add(cmd.script.sha);
      pipeline.call('eval', cmd.script.lua, ...cmd.args.slice(1));
    } else {
      pipeline.call(cmd.name, ...cmd.args);
    }
  }
}

/** Turns one raw reply into the caller's value (script decoders apply). */
export function decodeReply(cmd: QueuedCommand, raw: unknown): unknown {
  return cmd.script?.decode ? cmd.script.decode(raw) : raw;
}

/** The keys a command touches (script runs: their KEYS). */
export function keysOf(cmd: QueuedCommand): Array<string | Buffer> {
  if (cmd.keys) return cmd.keys.map((k) => (typeof k === 'number' ? String(k) : k));
  return new Command(cmd.name, [...cmd.args]).getKeys();
}
