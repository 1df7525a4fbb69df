/**
 * A Lua script definition: its body, SHA1 (computed locally), key count and how its reply
 * is decoded.
 *
 * Redis converts Lua values to RESP lossily: hash-style tables become empty arrays,
 * floats are truncated to integers, and arrays stop at the first nil. Scripts used with
 * txkit therefore return integers, strings, flat arrays without nils, or a
 * `cjson.encode(...)` string (decode it with {@link decodeJson}); decimals go out via
 * `tostring`. Errors use `redis.error_reply('CODE detail')`: `CODE` becomes the error's
 * `driverCode`.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../core/errors.js';

export interface ScriptDefinition<T = unknown> {
  /** The Lua body. Use `local` variables only: globals are forbidden by the server. */
  lua: string;
  /** How many leading arguments are keys. Checked on every call when given. */
  numberOfKeys?: number;
  /** Turns the raw reply into the value callers get. Default: the raw reply. */
  decode?: (raw: unknown) => T;
}

/** A defined script. Run it with `scripts.run(script, keys, args)` or `m.run(script, keys, args)`. */
export interface Script<T = unknown> {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
  readonly numberOfKeys: number | undefined;
  readonly decode: ((raw: unknown) => T) | undefined;
}

const NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;

/**
 * Defines a script.
 *
 * @example
 * const mul = defineScript('mul', {
 *   numberOfKeys: 3,
 *   lua: "local a = tonumber(redis.call('GET', KEYS[1])) ... return a * b",
 * });
 */
export function defineScript<T = unknown>(name: string, def: ScriptDefinition<T>): Script<T> {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidArgumentError(
      `script name must start with a letter and use only letters, digits, _ . : - (at most 128), got ${JSON.stringify(name)}`,
    );
  }
  if (typeof def?.lua !== 'string' || def.lua.trim() === '') {
    throw new InvalidArgumentError(`script '${name}': lua must be a non-empty string`);
  }
  if (def.numberOfKeys !== undefined && (!Number.isInteger(def.numberOfKeys) || def.numberOfKeys < 0)) {
    throw new InvalidArgumentError(
      `script '${name}': numberOfKeys must be an integer >= 0, got ${def.numberOfKeys}`,
    );
  }
  if (def.decode !== undefined && typeof def.decode !== 'function') {
    throw new InvalidArgumentError(`script '${name}': decode must be a function`);
  }
  return Object.freeze({
    name,
    lua: def.lua,
    sha: createHash('sha1').update(def.lua).digest('hex'),
    numberOfKeys: def.numberOfKeys,
    decode: def.decode,
  });
}

/** Checks the key count of one call against the script's definition. */
export function checkScriptKeys(script: Script<unknown>, keys: readonly unknown[]): void {
  if (script.numberOfKeys !== undefined && keys.length !== script.numberOfKeys) {
    throw new InvalidArgumentError(
      `script '${script.name}' takes ${script.numberOfKeys} key(s) in KEYS, got ${keys.length}`,
    );
  }
}

/** Decodes a `cjson.encode(...)` reply. */
export function decodeJson<T = unknown>(raw: unknown): T {
  if (typeof raw !== 'string') throw new TypeError(`expected a JSON string reply, got ${typeof raw}`);
  return JSON.parse(raw) as T;
}
