/**
 * A loopback TCP proxy that can hold back what one client sends, as a slow network would.
 * Tests use it to let a request on another connection (a PostgreSQL cancel, a KILL QUERY)
 * reach the server before the statement it targets.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DelayingProxy {
  /** The port to connect to instead of the server's. */
  readonly port: number;
  /** `url` (a server URL) pointed at the proxy instead. */
  urlFor(url: string): string;
  /** Delays by `ms` every chunk that the client on local port `clientPort` sends from now on (0: none). */
  delay(clientPort: number, ms: number): void;
  close(): Promise<void>;
}

interface Link {
  delayMs: number;
  /** Chunks are forwarded one after another, so a delay never reorders them. */
  forwarded: Promise<void>;
}

export async function delayingProxy(
  upstreamPort: number,
  upstreamHost = '127.0.0.1',
): Promise<DelayingProxy> {
  const links = new Map<number, Link>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, upstreamHost);
    const link: Link = { delayMs: 0, forwarded: Promise.resolve() };
    const clientPort = client.remotePort ?? -1;
    links.set(clientPort, link);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        links.delete(clientPort);
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.pipe(client);
    client.on('data', (chunk) => {
      const ms = link.delayMs;
      link.forwarded = link.forwarded.then(async () => {
        if (ms > 0) await sleep(ms);
        if (!upstream.destroyed) upstream.write(chunk);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    urlFor(url) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    delay(clientPort, ms) {
      const link = links.get(clientPort);
      if (!link) throw new Error(`no client on local port ${clientPort} is connected through the proxy`);
      link.delayMs = ms;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
