/**
 * What the earlier bodies of a batched optimistic round will have written once its EXEC
 * runs, so a later body in the same round can read those values without a round trip.
 *
 * Only writes whose effect is certain are tracked exactly: plain `SET` (with a positive
 * EX/PX expiry or KEEPTTL at most; EXAT/PXAT may lie in the past and delete the key),
 * `DEL`/`UNLINK`, and `INCR`/`DECR`/`INCRBY`/`DECRBY` on a known integer.
 * Any other command makes its keys unknown, and a script or a command whose keys cannot
 * be derived makes every key unknown: a read of an unknown key is deferred to the next
 * round, where it runs on the server after this round's EXEC.
 */
import { keysOf, type QueuedCommand, type RedisArg } from './commands.js';

const UNKNOWN = Symbol('unknown');
type Known = string | null; // null: the key will not exist
/**
 * Relative expiries a SET is sure to accept, with their upper bound: a positive one cannot
 * remove the key before the round's EXEC ends, and one too large fails the SET at run time.
 */
const EXPIRY_LIMIT = new Map([
  ['ex', 1_000_000_000n],
  ['px', 1_000_000_000_000n],
]);
/** An integer as Redis parses one (no sign on zero, no leading zeros, no plus). */
const INTEGER = /^(0|-?[1-9][0-9]*)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * One string per Redis key: a Buffer key and a string key with the same bytes get the
 * same id, different bytes never do ('u' + the UTF-8 text, or 'b' + the raw bytes).
 */
export function keyId(key: RedisArg): string {
  if (typeof key === 'number') return `u${numberText(key)}`;
  if (typeof key === 'string') return SURROGATE.test(key) ? `u${Buffer.from(key).toString()}` : `u${key}`;
  const text = key.toString();
  return Buffer.from(text).equals(key) ? `u${text}` : `b${key.toString('latin1')}`;
}

/**
 * A number as ioredis sends it: integers beyond 2^53 in full digits (not `1e+21`), any
 * other number as `String(n)`.
 */
function numberText(n: number): string {
  return Number.isInteger(n) && !Number.isSafeInteger(n) ? BigInt(n).toString() : String(n);
}

/** The value as the read commands return it (ioredis decodes replies as UTF-8). */
function asReadValue(arg: RedisArg): string {
  if (typeof arg === 'number') return numberText(arg);
  return Buffer.isBuffer(arg) ? arg.toString() : arg;
}

export class WriteOverlay {
  readonly #values = new Map<string, Known | typeof UNKNOWN>();
  #allUnknown = false;

  /** True while no write was recorded: every read can go to the server. */
  get isEmpty(): boolean {
    return this.#values.size === 0 && !this.#allUnknown;
  }

  /** Records the effect of `commands`, in order. */
  apply(commands: readonly QueuedCommand[]): void {
    for (const cmd of commands) this.#applyOne(cmd);
  }

  /**
   * The value a `GET key` would return after the writes so far: a string, `null` for a
   * missing key, `undefined` when the key was not written, or `UNKNOWN` when it cannot be
   * known without the server.
   */
  lookup(key: RedisArg): Known | undefined | typeof UNKNOWN {
    if (this.#allUnknown) return UNKNOWN;
    return this.#values.get(keyId(key));
  }

  /** True when `key` was written by an earlier body of the round (or may have been). */
  touches(keys: readonly RedisArg[]): boolean {
    if (this.#allUnknown) return true;
    return keys.some((k) => this.#values.has(keyId(k)));
  }

  #applyOne(cmd: QueuedCommand): void {
    if (this.#applyExact(cmd)) return;
    const keys = cmd.script ? [] : keysOf(cmd);
    if (keys.length === 0) this.#allUnknown = true;
    for (const key of keys) this.#values.set(keyId(key), UNKNOWN);
  }

  /** Tracks the commands whose effect is certain; false for any other. */
  #applyExact(cmd: QueuedCommand): boolean {
    const args = cmd.args;
    switch (cmd.name) {
      case 'set':
        if (args.length < 2 || !plainSetOptions(args.slice(2))) return false;
        this.#set(args[0]!, asReadValue(args[1]!));
        return true;
      case 'del':
      case 'unlink':
        for (const key of args) this.#set(key, null);
        return args.length > 0;
      case 'incr':
      case 'decr':
        if (args.length !== 1) return false;
        this.#add(args[0]!, cmd.name === 'incr' ? 1n : -1n);
        return true;
      case 'incrby':
      case 'decrby': {
        const by = args.length === 2 ? asReadValue(args[1]!) : '';
        if (!INTEGER.test(by)) return false;
        const amount = BigInt(by);
        // Redis refuses an increment outside int64, and a DECRBY it cannot negate.
        if (amount < INT64_MIN || amount > INT64_MAX || (cmd.name === 'decrby' && amount === INT64_MIN))
          return false;
        this.#add(args[0]!, cmd.name === 'incrby' ? amount : -amount);
        return true;
      }
      default:
        return false;
    }
  }

  #set(key: RedisArg, value: Known): void {
    this.#values.set(keyId(key), value);
  }

  /** INCRBY on a known integer (or a missing key, which counts as 0); otherwise unknown. */
  #add(key: RedisArg, by: bigint): void {
    const id = keyId(key);
    const current = this.#allUnknown ? UNKNOWN : this.#values.get(id);
    if (current === undefined || current === UNKNOWN || (current !== null && !INTEGER.test(current))) {
      this.#values.set(id, UNKNOWN);
      return;
    }
    const next = BigInt(current ?? '0') + by;
    this.#values.set(id, next < INT64_MIN || next > INT64_MAX ? UNKNOWN : String(next));
  }
}

/**
 * SET options that leave the written value in place: one positive EX/PX, or KEEPTTL (two of
 * them together are a syntax error).
 */
function plainSetOptions(options: readonly RedisArg[]): boolean {
  let expiries = 0;
  for (let i = 0; i < options.length; i++) {
    const word = asReadValue(options[i]!).toLowerCase();
    if (++expiries > 1) return false;
    if (word === 'keepttl') continue;
    const limit = EXPIRY_LIMIT.get(word);
    const n = options[++i];
    if (limit === undefined || n === undefined || !INTEGER.test(asReadValue(n))) return false;
    const amount = BigInt(asReadValue(n));
    if (amount <= 0n || amount > limit) return false;
  }
  return true;
}

export { UNKNOWN as UNKNOWN_VALUE };
