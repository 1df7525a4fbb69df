/**
 * Money transfer as one Lua script: both accounts must exist, the amount is a positive
 * integer in minor units, the balance must cover it, and the transfer id is an
 * idempotency key: a replay returns the first result instead of moving money again
 * (so a transfer whose outcome was unknown can safely be sent again with the same id).
 *
 * All keys carry the hash tag `{<prefix>}` so one transfer stays in one cluster slot.
 * That puts every account of one prefix on one node: use several prefixes to shard.
 */
import { InvalidArgumentError } from '../../core/errors.js';
import type { RedisTx } from '../redis-tx.js';
import { defineScript } from '../script.js';
import { readCount, setCount } from './counter-key.js';
import { checkKeyPart, isPositiveInt } from './recipe-keys.js';

// KEYS: from, to, marker, log   ARGV: amount, transferId, markerTtlSec, maxLog
// Returns {'OK', fromBalance, toBalance} | {'REPLAY', fromBalance, toBalance}
//   | {'NOT_FOUND', which} | {'INSUFFICIENT', balance} | {'INVALID_AMOUNT'} | {'SAME_ACCOUNT'} | {'OVERFLOW'}
const TRANSFER_LUA = `
local prior = redis.call('GET', KEYS[3])
if prior then
  local first = cjson.decode(prior)
  return {'REPLAY', first.from, first.to}
end
local amount = tonumber(ARGV[1])
if not amount or amount <= 0 or amount ~= math.floor(amount) then return {'INVALID_AMOUNT'} end
if KEYS[1] == KEYS[2] then return {'SAME_ACCOUNT'} end
local ltype = redis.call('TYPE', KEYS[4]).ok
if ltype ~= 'list' and ltype ~= 'none' then return redis.error_reply('WRONGTYPE log key is a ' .. ltype) end
local rawFrom = redis.call('GET', KEYS[1])
if not rawFrom then return {'NOT_FOUND', 'from'} end
local rawTo = redis.call('GET', KEYS[2])
if not rawTo then return {'NOT_FOUND', 'to'} end
if not string.match(rawFrom, '^%-?%d+$') or not string.match(rawTo, '^%-?%d+$') then
  return redis.error_reply('ERR_NOT_INTEGER balances must be integers')
end
local from = tonumber(rawFrom)
local to = tonumber(rawTo)
if from < amount then return {'INSUFFICIENT', from} end
if to + amount > 9007199254740991 then return {'OVERFLOW'} end
local t = redis.call('TIME')
local newFrom = redis.call('DECRBY', KEYS[1], amount)
local newTo = redis.call('INCRBY', KEYS[2], amount)
redis.call('SET', KEYS[3], cjson.encode({from = newFrom, to = newTo}), 'EX', tonumber(ARGV[3]))
redis.call('LPUSH', KEYS[4], cjson.encode({id = ARGV[2], amount = amount, from_key = KEYS[1], to_key = KEYS[2],
  at_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}))
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
return {'OK', newFrom, newTo}
`;

export const transferScript = defineScript<unknown[]>('txkit.bank.transfer', {
  numberOfKeys: 4,
  lua: TRANSFER_LUA,
});

export type TransferResult =
  | { ok: true; fromBalance: number; toBalance: number; replayed: boolean }
  | { ok: false; reason: 'INSUFFICIENT'; balance: number }
  | { ok: false; reason: 'NOT_FOUND'; account: 'from' | 'to' }
  | { ok: false; reason: 'INVALID_AMOUNT' | 'SAME_ACCOUNT' | 'OVERFLOW' };

export interface TransferInput {
  from: string;
  to: string;
  /** Positive integer in minor units (cents). */
  amount: number;
  /** Idempotency key: a replay returns the first result. */
  transferId: string;
}

export interface TransfersOptions {
  /** Key prefix and hash tag. Default `bank`. */
  prefix?: string;
  /** How long a transfer id is remembered. Default 86 400 s. */
  idempotencyTtlSec?: number;
  /** Entries kept in the transfer log (`LPUSH` + `LTRIM`). Default 10 000. */
  maxLog?: number;
}

/**
 * @example
 * const bank = new Transfers(tx);
 * await bank.open('alice', 1000);
 * await bank.open('bob', 500);
 * const r = await bank.transfer({ from: 'alice', to: 'bob', amount: 100, transferId: 't-1' });
 */
export class Transfers {
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #maxLog: number;

  constructor(
    private readonly tx: RedisTx,
    options: TransfersOptions = {},
  ) {
    this.#prefix = checkKeyPart('prefix', options.prefix ?? 'bank');
    this.#ttl = options.idempotencyTtlSec ?? 86_400;
    this.#maxLog = options.maxLog ?? 10_000;
    if (!isPositiveInt(this.#ttl))
      throw new InvalidArgumentError('idempotencyTtlSec must be a positive integer');
    if (!isPositiveInt(this.#maxLog)) throw new InvalidArgumentError('maxLog must be a positive integer');
    tx.scripts.add(transferScript);
  }

  /** Key of an account's balance. */
  accountKey(account: string): string {
    return `{${this.#prefix}}:acct:${checkKeyPart('account', account)}`;
  }

  /** Key of the transfer log (newest first). */
  get logKey(): string {
    return `{${this.#prefix}}:transfers`;
  }

  /** Creates (or resets) an account with a balance in minor units. */
  open(account: string, balance: number): Promise<void> {
    return setCount(this.tx, this.accountKey(account), balance, 'balance (in minor units)');
  }

  /** The balance in minor units, or null when the account does not exist. */
  balance(account: string): Promise<number | null> {
    return readCount(this.tx, this.accountKey(account));
  }

  /** Moves `amount` atomically, once per `transferId`. */
  async transfer(input: TransferInput): Promise<TransferResult> {
    const id = checkKeyPart('transferId', input.transferId);
    if (!isPositiveInt(input.amount)) return { ok: false, reason: 'INVALID_AMOUNT' };
    const keys = [
      this.accountKey(input.from),
      this.accountKey(input.to),
      `{${this.#prefix}}:transfer:${id}`,
      this.logKey,
    ];
    const raw = await this.tx.scripts.run(transferScript, keys, [input.amount, id, this.#ttl, this.#maxLog]);
    const [status, a, b] = raw as [string, unknown?, unknown?];
    switch (status) {
      case 'OK':
      case 'REPLAY':
        return { ok: true, fromBalance: Number(a), toBalance: Number(b), replayed: status === 'REPLAY' };
      case 'INSUFFICIENT':
        return { ok: false, reason: 'INSUFFICIENT', balance: Number(a) };
      case 'NOT_FOUND':
        return { ok: false, reason: 'NOT_FOUND', account: a as 'from' | 'to' };
      case 'INVALID_AMOUNT':
      case 'SAME_ACCOUNT':
      case 'OVERFLOW':
        return { ok: false, reason: status };
      default:
        throw new Error(`unexpected reply from the transfer script: ${JSON.stringify(raw)}`);
    }
  }
}
