/**
 * Sliding-window rate limiter as one Lua script, on the **server's** clock (`TIME`), so
 * client clock steps cannot change decisions. Every request gets a unique sorted-set
 * member (`<micros>-<random>`): members made of whole seconds would collapse into one
 * entry and let everything through. Denied requests are not recorded.
 *
 * An entry made at time t counts while `now - t < window`.
 */
import { randomBytes } from 'node:crypto';
import { InvalidOptionError } from '../../core/errors.js';
import type { RedisTx } from '../redis-tx.js';
import { defineScript } from '../script.js';
import { checkKeyPart, isPositiveInt } from './recipe-keys.js';

// KEYS: window zset   ARGV: windowMs, max, nonce
// Returns {allowed (0|1), count, max, remaining, resetAtMs, retryAfterMs} (flat integers)
const SLIDING_WINDOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local windowMs = tonumber(ARGV[1])
local window = windowMs * 1000
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < max then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), string.format('%.0f', now) .. '-' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], windowMs)
  count = count + 1
  allowed = 1
end
local nowMs = math.floor(now / 1000)
local resetAtMs = nowMs + windowMs
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then resetAtMs = math.floor((tonumber(oldest[2]) + window) / 1000) end
local retryAfterMs = 0
if allowed == 0 then retryAfterMs = math.max(0, resetAtMs - nowMs) end
return {allowed, count, max, max - count, resetAtMs, retryAfterMs}
`;

export const slidingWindowScript = defineScript<number[]>('txkit.ratelimit.sliding', {
  numberOfKeys: 1,
  lua: SLIDING_WINDOW_LUA,
});

export interface RateLimitDecision {
  allowed: boolean;
  /** Requests counted in the window, including this one when allowed. */
  count: number;
  remaining: number;
  /** 0 when allowed; otherwise how long until the oldest counted request leaves the window. */
  retryAfterMs: number;
  /** Server time (ms since epoch) when the oldest counted request leaves the window. */
  resetAtMs: number;
}

export interface RateLimiterOptions {
  /** Window length. Default 60 000 ms. */
  windowMs?: number;
  /** Requests allowed per window. Default 100. */
  max?: number;
  /** Key prefix. Default `rl`. */
  prefix?: string;
}

/**
 * @example
 * const limiter = new RateLimiter(tx, { windowMs: 10_000, max: 5 });
 * const d = await limiter.check('user:42');
 * if (!d.allowed) res.setHeader('Retry-After', Math.ceil(d.retryAfterMs / 1000));
 */
export class RateLimiter {
  readonly windowMs: number;
  readonly max: number;
  readonly #prefix: string;

  constructor(
    private readonly tx: RedisTx,
    options: RateLimiterOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 60_000;
    this.max = options.max ?? 100;
    if (!isPositiveInt(this.windowMs)) {
      throw new InvalidOptionError(`windowMs must be a positive integer, got ${String(options.windowMs)}`);
    }
    if (!isPositiveInt(this.max))
      throw new InvalidOptionError(`max must be a positive integer, got ${String(options.max)}`);
    this.#prefix = checkKeyPart('prefix', options.prefix ?? 'rl');
    tx.scripts.add(slidingWindowScript);
  }

  /** The sorted-set key of one identity. */
  key(id: string): string {
    return `${this.#prefix}:{${checkKeyPart('id', id)}}`;
  }

  /** Counts one request for `id` if the window has room. */
  async check(id: string): Promise<RateLimitDecision> {
    const nonce = randomBytes(8).toString('hex');
    const raw = await this.tx.scripts.run(
      slidingWindowScript,
      [this.key(id)],
      [this.windowMs, this.max, nonce],
    );
    const [allowed, count, , remaining, resetAtMs, retryAfterMs] = raw as number[];
    this.tx.metrics.inc('ratelimit_decisions_total', { allowed: allowed === 1 ? 'true' : 'false' });
    return {
      allowed: allowed === 1,
      count: count!,
      remaining: remaining!,
      resetAtMs: resetAtMs!,
      retryAfterMs: retryAfterMs!,
    };
  }
}
