/**
 * Recipes as Lua scripts with idempotency keys: stock deduction, a money transfer, and a
 * sliding-window rate limiter on the server's clock.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/redis-recipes.ts
 */
import { Redis } from 'ioredis';
import { Inventory, RateLimiter, redisTx, Transfers } from '../src/redis/index.js';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const tx = redisTx(client);
const prefix = `example${process.pid}`;

try {
  const inventory = new Inventory(tx, { prefix: `${prefix}-inv` });
  await inventory.set('p1001', 100);
  const order = { productId: 'p1001', quantity: 5, userId: 'user123', orderId: 'order001' };
  console.log('deduct:', await inventory.deduct(order));
  console.log('same order again:', await inventory.deduct(order), '- stock', await inventory.stock('p1001'));

  const bank = new Transfers(tx, { prefix: `${prefix}-bank` });
  await bank.open('alice', 1000);
  await bank.open('bob', 500);
  console.log('transfer:', await bank.transfer({ from: 'alice', to: 'bob', amount: 100, transferId: 't-1' }));
  console.log('replay:', await bank.transfer({ from: 'alice', to: 'bob', amount: 100, transferId: 't-1' }));
  console.log(
    'overdraft:',
    await bank.transfer({ from: 'bob', to: 'alice', amount: 10_000, transferId: 't-2' }),
  );

  const limiter = new RateLimiter(tx, { windowMs: 10_000, max: 5, prefix: `${prefix}-rl` });
  const decisions = [];
  for (let i = 0; i < 7; i++) decisions.push((await limiter.check('user42')).allowed);
  console.log('rate limiter (max 5 per 10 s):', decisions.join(' '));
} finally {
  const keys = await client.keys(`*${prefix}*`);
  if (keys.length) await client.del(...keys);
  await tx.close();
  client.disconnect();
}
