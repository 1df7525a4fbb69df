/**
 * Sends a PostgreSQL CancelRequest for a backend: a separate short connection carrying the
 * backend's process id and secret key (protocol message 80877102). The server then
 * cancels whatever statement that backend is running, which fails with SQLSTATE 57014.
 * No authentication and no pooled connection are needed, so a cancel works even when the
 * pool is exhausted.
 */
import net from 'node:net';

export interface CancelTarget {
  host: string;
  port: number;
  processID: number;
  secretKey: number;
}

const CANCEL_REQUEST_CODE = 80877102;

/** Resolves once the request was sent and the server closed the connection (or after `timeoutMs`). */
export function sendCancelRequest(target: CancelTarget, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = target.host.startsWith('/')
      ? net.connect(`${target.host}/.s.PGSQL.${target.port}`)
      : net.connect(target.port, target.host);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, timeoutMs);
    timer.unref?.();
    socket.once('connect', () => {
      const msg = Buffer.alloc(16);
      msg.writeInt32BE(16, 0);
      msg.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      msg.writeInt32BE(target.processID, 8);
      msg.writeInt32BE(target.secretKey, 12);
      socket.end(msg);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
  });
}
