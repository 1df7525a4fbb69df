import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  benchPipelineCommand,
  inventoryCommand,
  parseWindow,
  ratelimitCommand,
  register,
  scriptsCommand,
} from '../../src/cli/redis.js';
import { prefix, url } from './redis-test-env.js';

describe.skipIf(!url)('txkit redis CLI', () => {
  it('loads and reports the bundled scripts; flush needs --yes', async () => {
    const loaded = await scriptsCommand('load', { url: url!, json: true });
    expect(loaded.exitCode).toBe(0);
    const rows = loaded.lines.map((l) => JSON.parse(l) as { name: string; loaded: boolean[] });
    expect(rows.map((r) => r.name)).toEqual([
      'txkit.inventory.deduct',
      'txkit.bank.transfer',
      'txkit.ratelimit.sliding',
    ]);
    expect(rows.every((r) => r.loaded.every(Boolean))).toBe(true);
    const refused = await scriptsCommand('flush', { url: url! });
    expect(refused.exitCode).toBe(2);
    expect(refused.lines.join(' ')).toMatch(/--yes/);
    expect((await scriptsCommand('bogus', { url: url! })).exitCode).toBe(2);
  });

  it('checks a rate limit and exits 1 when denied', async () => {
    const id = prefix().slice(2);
    const codes: number[] = [];
    for (let i = 0; i < 3; i++)
      codes.push((await ratelimitCommand(id, { url: url!, window: '10s', max: '2' })).exitCode);
    expect(codes).toEqual([0, 0, 1]);
    expect(parseWindow('2m')).toBe(120_000);
    expect(() => parseWindow('soon')).toThrow(/use e.g. 500ms, 30s/);
  });

  it('sets and deducts stock once per order', async () => {
    const product = prefix().slice(2);
    expect((await inventoryCommand('set', product, '10', { url: url! })).exitCode).toBe(0);
    const first = await inventoryCommand('deduct', product, '3', { url: url!, order: 'o1', json: true });
    expect(JSON.parse(first.lines[0]!)).toEqual({ ok: true, remaining: 7, previous: 10 });
    const again = await inventoryCommand('deduct', product, '3', { url: url!, order: 'o1' });
    expect(again).toEqual({ exitCode: 1, lines: ['refused: DUPLICATE_ORDER'] });
    expect((await inventoryCommand('deduct', product, '3', { url: url! })).exitCode).toBe(2);
  });

  it('benchmarks a pipeline and registers its commands', async () => {
    const r = await benchPipelineCommand({ url: url!, n: '200', json: true });
    expect(JSON.parse(r.lines[0]!)).toMatchObject({ n: 200 });
    const program = new Command();
    register(program);
    const redis = program.commands.find((c) => c.name() === 'redis')!;
    expect(redis.commands.map((c) => c.name()).sort()).toEqual([
      'bench',
      'inventory',
      'ratelimit',
      'scripts',
    ]);
  });
});
