import type { RedisTx } from '../redis-tx.js';
import { defineScript } from '../script.js';
import { readCount, setCount } from './counter-key.js';
import { checkKeyPart, isPositiveInt } from './recipe-keys.js';

// KEYS: stock, orders, stats?   ARGV: quantity, userId, orderId
// Returns a flat array: {'OK', new, old} | {'DUPLICATE_ORDER', remainingAfterFirst}
//   | {'NOT_FOUND'} | {'INSUFFICIENT', available} | {'INVALID_QUANTITY'}
const DEDUCT_LUA = `
local qty = tonumber(ARGV[1])
if not qty or qty <= 0 or qty ~= math.floor(qty) then return {'INVALID_QUANTITY'} end
local otype = redis.call('TYPE', KEYS[2]).ok
if otype ~= 'hash' and otype ~= 'none' then return redis.error_reply('WRONGTYPE orders key is a ' .. otype) end
if KEYS[3] then
  local stype = redis.call('TYPE', KEYS[3]).ok
  if stype ~= 'hash' and stype ~= 'none' then return redis.error_reply('WRONGTYPE stats key is a ' .. stype) end
end
local prior = redis.call('HGET', KEYS[2], ARGV[3])
if prior then return {'DUPLICATE_ORDER', cjson.decode(prior).remaining} end
local raw = redis.call('GET', KEYS[1])
if not raw then return {'NOT_FOUND'} end
if not string.match(raw, '^%-?%d+$') then return redis.error_reply('ERR_NOT_INTEGER stock is not an integer') end
local stock = tonumber(raw)
if stock < qty then return {'INSUFFICIENT', stock} end
local t = redis.call('TIME')
local remaining = redis.call('DECRBY', KEYS[1], qty)
redis.call('HSET', KEYS[2], ARGV[3], cjson.encode({user = ARGV[2], quantity = qty, remaining = remaining,
  at_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}))
if KEYS[3] then
  redis.call('HINCRBY', KEYS[3], 'total_orders', 1)
  redis.call('HINCRBY', KEYS[3], 'total_quantity', qty)
end
return {'OK', remaining, stock}
`;

export const deductStockScript = defineScript<unknown[]>('txkit.inventory.deduct', { lua: DEDUCT_LUA });

export type DeductResult =
  | { ok: true; remaining: number; previous: number }
  | { ok: false; reason: 'INSUFFICIENT'; available: number }
  | { ok: false; reason: 'DUPLICATE_ORDER'; remaining: number }
  | { ok: false; reason: 'NOT_FOUND' }
  | { ok: false; reason: 'INVALID_QUANTITY' };

export interface DeductInput {
  productId: string;
  /** A positive integer. */
  quantity: number;
  userId: string;
  /** Idempotency key: a second deduction with the same order id changes nothing. */
  orderId: string;
}

export interface InventoryOptions {
  /** Key prefix. Default `inv`. */
  prefix?: string;
  /** Keep `total_orders` / `total_quantity` per product in `…:stats`. Default true. */
  stats?: boolean;
}

/**
 * @example
 * const inventory = new Inventory(tx);
 * await inventory.set('p1001', 50);
 * const r = await inventory.deduct({ productId: 'p1001', quantity: 5, userId: 'u1', orderId: 'o-1' });
 * if (!r.ok && r.reason === 'INSUFFICIENT') console.log(`only ${r.available} left`);
 */
export class Inventory {
  readonly #prefix: string;
  readonly #stats: boolean;

  constructor(
    private readonly tx: RedisTx,
    options: InventoryOptions = {},
  ) {
    this.#prefix = checkKeyPart('prefix', options.prefix ?? 'inv');
    this.#stats = options.stats ?? true;
    tx.scripts.add(deductStockScript);
  }

  /** The keys of one product (all in the product's hash slot). */
  keys(productId: string): { stock: string; orders: string; stats: string } {
    const base = `${this.#prefix}:{${checkKeyPart('productId', productId)}}`;
    return { stock: base, orders: `${base}:orders`, stats: `${base}:stats` };
  }

  /** Sets the stock level (an integer >= 0). */
  set(productId: string, quantity: number): Promise<void> {
    return setCount(this.tx, this.keys(productId).stock, quantity, 'stock');
  }

  /** The stock level, or null when the product is unknown. */
  stock(productId: string): Promise<number | null> {
    return readCount(this.tx, this.keys(productId).stock);
  }

  /** Deducts stock atomically and records the order, once per `orderId`. */
  async deduct(input: DeductInput): Promise<DeductResult> {
    const keys = this.keys(input.productId);
    checkKeyPart('userId', input.userId);
    checkKeyPart('orderId', input.orderId);
    let result: DeductResult;
    if (!isPositiveInt(input.quantity)) {
      result = { ok: false, reason: 'INVALID_QUANTITY' };
    } else {
      const keyList = this.#stats ? [keys.stock, keys.orders, keys.stats] : [keys.stock, keys.orders];
      const raw = await this.tx.scripts.run(deductStockScript, keyList, [
        input.quantity,
        input.userId,
        input.orderId,
      ]);
      result = decodeDeduct(raw);
    }
    this.tx.metrics.inc('inventory_deductions_total', { result: result.ok ? 'OK' : result.reason });
    return result;
  }
}

function decodeDeduct(raw: unknown[]): DeductResult {
  const [status, a, b] = raw as [string, number?, number?];
  switch (status) {
    case 'OK':
      return { ok: true, remaining: a!, previous: b! };
    case 'INSUFFICIENT':
      return { ok: false, reason: 'INSUFFICIENT', available: a! };
    case 'DUPLICATE_ORDER':
      return { ok: false, reason: 'DUPLICATE_ORDER', remaining: a! };
    case 'NOT_FOUND':
      return { ok: false, reason: 'NOT_FOUND' };
    case 'INVALID_QUANTITY':
      return { ok: false, reason: 'INVALID_QUANTITY' };
    default:
      throw new Error(`unexpected reply from the deduct script: ${JSON.stringify(raw)}`);
  }
}
