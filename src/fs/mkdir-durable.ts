/** `mkdir -p` whose new directories survive a power loss: each created directory's parent is fsynced. */
import { dirname, resolve } from 'node:path';
import type { FsAdapter } from './fs-adapter.js';

export async function mkdirDurable(fs: FsAdapter, path: string): Promise<void> {
  const target = resolve(path);
  const first = await fs.mkdir(target, { recursive: true });
  if (first === undefined) return; // it already existed
  const top = resolve(first);
  const created: string[] = [];
  for (let d = target; ; d = dirname(d)) {
    created.push(d);
    if (d === top || dirname(d) === d) break;
  }
  for (const d of created.reverse()) await fs.syncDir(dirname(d));
}
