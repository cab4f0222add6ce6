/**
 * A TCP server on 127.0.0.1 that accepts and never answers: a stalled
 * Teleport, or an HTTPS proxy that never answers CONNECT. It reads (and
 * drops) what it is sent, so a client's FIN is noticed, and counts the
 * connections it got and those still open: a client that gives up must
 * close its socket, not leave it to the server.
 * Test-only: never imported by the product.
 */
import * as net from "node:net";

export interface SilentServer {
  /** `127.0.0.1:<port>`. */
  readonly addr: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Resolves once no connection is open, or after `timeoutMs`; says which. */
  allClosed(timeoutMs?: number): Promise<boolean>;
  /** Cuts what is still open and stops listening. */
  close(): Promise<void>;
}

/** How often `allClosed` looks. */
const POLL_MS = 50;

export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.resume();
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    addr: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    get connections() {
      return connections;
    },
    async allClosed(timeoutMs = 1_000) {
      const end = Date.now() + timeoutMs;
      while (sockets.size > 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      return sockets.size === 0;
    },
    async close() {
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => server.close(r));
    },
  };
}
