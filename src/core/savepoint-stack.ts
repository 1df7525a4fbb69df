/**
 * Savepoint bookkeeping that mirrors the server: `RELEASE sp` also releases every
 * savepoint created after `sp`; `ROLLBACK TO sp` destroys the later ones and keeps `sp`.
 */
import { SavepointInvalidError } from './errors.js';

export interface SavepointEntry {
  readonly name: string;
  /** Length of the hook list when the savepoint was made: hooks after it belong to it. */
  readonly hookMark: number;
}

export class SavepointStack {
  readonly #entries: SavepointEntry[] = [];

  hasName(name: string): boolean {
    return this.#entries.some((e) => e.name === name);
  }

  push(name: string, hookMark: number): SavepointEntry {
    const entry = { name, hookMark };
    this.#entries.push(entry);
    return entry;
  }

  #indexOf(entry: SavepointEntry): number {
    const i = this.#entries.indexOf(entry);
    if (i < 0) {
      throw new SavepointInvalidError(
        `savepoint "${entry.name}" no longer exists: it was released or rolled back past`,
      );
    }
    return i;
  }

  /** Throws unless `entry` is live. */
  assertLive(entry: SavepointEntry): void {
    this.#indexOf(entry);
  }

  /** After `ROLLBACK TO entry`: later savepoints are gone, `entry` stays. */
  rolledBackTo(entry: SavepointEntry): void {
    this.#entries.length = this.#indexOf(entry) + 1;
  }

  /** After `RELEASE entry`: it and every later savepoint are gone. */
  released(entry: SavepointEntry): void {
    this.#entries.length = this.#indexOf(entry);
  }

  clear(): void {
    this.#entries.length = 0;
  }
}
