/** Writing every byte: write(2) may write fewer bytes than asked (near ENOSPC, > 2 GiB). */
import { FsOperationError } from './errors.js';
import type { FsFile } from './fs-adapter.js';

/** Writes all of `buf` at `position` (or the current offset when null), looping on short writes. */
export async function writeAll(
  file: FsFile,
  buf: Uint8Array,
  position: number | null,
  path?: string,
): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await file.write(buf, done, buf.length - done, position === null ? null : position + done);
    if (n <= 0) {
      throw new FsOperationError('E_FS', `write made no progress (${done}/${buf.length} bytes)`, {
        op: 'write',
        path,
      });
    }
    done += n;
  }
}

/** Writes all buffers at `position` with writev, continuing after short writes. */
export async function writevAll(
  file: FsFile,
  bufs: Uint8Array[],
  position: number,
  path?: string,
): Promise<number> {
  let total = 0;
  for (const b of bufs) total += b.length;
  let written = await file.writev(bufs, position);
  if (written === total) return total;
  // Short writev: finish the rest buffer by buffer.
  let skip = written;
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const rest = b.subarray(skip);
    skip = 0;
    await writeAll(file, rest, position + written, path);
    written += rest.length;
  }
  return total;
}
