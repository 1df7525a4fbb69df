/**
 * Redis Cluster key slots: CRC16 (XMODEM) of the key's hash tag, modulo 16384.
 *
 * Hash tag rule (cluster spec): if the key has a `{` followed later by a `}` with at least
 * one character between them, only that substring is hashed. So `{user1000}.following` and
 * `{user1000}.followers` share a slot; `foo{}{bar}` hashes the whole key; `foo{{bar}}zap`
 * hashes `{bar`.
 */
import { CrossSlotError } from './errors.js';

const SLOTS = 16_384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc;
}

/** The byte range of `key` that is hashed: the hash tag if there is a non-empty one. */
function hashedRange(bytes: Uint8Array): [number, number] {
  const open = bytes.indexOf(0x7b); // '{'
  if (open === -1) return [0, bytes.length];
  const close = bytes.indexOf(0x7d, open + 1); // '}'
  if (close === -1 || close === open + 1) return [0, bytes.length];
  return [open + 1, close];
}

/** The cluster slot (0–16383) of a key. */
export function keySlot(key: string | Buffer | number): number {
  const bytes = Buffer.isBuffer(key) ? key : Buffer.from(String(key), 'utf8');
  const [start, end] = hashedRange(bytes);
  return crc16(bytes, start, end) % SLOTS;
}

/**
 * Returns the one slot all `keys` share, or undefined when there are no keys.
 * Throws {@link CrossSlotError} (before anything is sent) when they do not share one.
 */
export function commonSlot(keys: Iterable<string | Buffer | number>): number | undefined {
  const bySlot = new Map<number, string[]>();
  for (const key of keys) {
    const slot = keySlot(key);
    let list = bySlot.get(slot);
    if (!list) {
      list = [];
      bySlot.set(slot, list);
    }
    list.push(key.toString());
  }
  if (bySlot.size > 1) throw new CrossSlotError(bySlot);
  const [only] = bySlot.keys();
  return only;
}
