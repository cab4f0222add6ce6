/**
 * A fake HTTP CONNECT proxy on 127.0.0.1:0 that records what it was asked
 * for. `route` maps a requested "host:port" to where the tunnel really goes,
 * so tests can ask for names that do not resolve (and are not loopback, which
 * Go's proxy rules never send through a proxy). Test-only.
 */

import { Buffer } from "node:buffer";
import * as net from "node:net";

/** Largest request head we read. */
const MAX_HEAD_BYTES = 16 * 1024;

export interface ConnectRequest {
  /** The CONNECT target, "host:port". */
  target: string;
  /** The `Proxy-Authorization` header, if sent. */
  authorization?: string;
}

export interface ConnectProxyOptions {
  /** Where the tunnel for `target` goes; default: the target itself. */
  route?: (target: string) => { host: string; port: number };
  /** A status to refuse with (e.g. 403) instead of tunnelling; default none. */
  refuse?: (request: ConnectRequest) => number | undefined;
}

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>`, for HTTPS_PROXY. */
  readonly url: string;
  readonly port: number;
  /** Every CONNECT request, in arrival order. */
  readonly requests: ConnectRequest[];
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  200: "Connection established",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  502: "Bad Gateway",
};

/** Starts the fake proxy on 127.0.0.1:0. */
export async function startConnectProxy(opts: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const sockets = new Set<net.Socket>();
  const requests: ConnectRequest[] = [];
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const answer = (s: net.Socket, status: number) =>
    s.end(`HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\nContent-Length: 0\r\n\r\n`);

  const server = net.createServer((client) => {
    track(client);
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buffered.length > MAX_HEAD_BYTES) client.destroy();
        return;
      }
      client.off("data", onData);
      client.pause();
      const [requestLine = "", ...headerLines] = buffered.subarray(0, end).toString("latin1")
        .split("\r\n");
      const rest = buffered.subarray(end + 4);
      const m = /^(\S+) (\S+) HTTP\/1\.[01]$/.exec(requestLine);
      if (!m || m[1] !== "CONNECT" || !m[2]) {
        answer(client, 405);
        return;
      }
      const request: ConnectRequest = { target: m[2] };
      for (const line of headerLines) {
        const colon = line.indexOf(":");
        if (line.slice(0, colon).trim().toLowerCase() === "proxy-authorization") {
          request.authorization = line.slice(colon + 1).trim();
        }
      }
      requests.push(request);
      const refusal = opts.refuse?.(request);
      if (refusal !== undefined) {
        answer(client, refusal);
        return;
      }
      const to = opts.route?.(request.target) ?? splitTarget(request.target);
      const upstream = net.connect(to.port, to.host);
      track(upstream);
      let connected = false;
      upstream.once("connect", () => {
        connected = true;
        client.write("HTTP/1.1 200 Connection established\r\n\r\n");
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once("error", () => {
        if (!client.destroyed) answer(client, 502);
      });
      const cut = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("close", cut);
      upstream.on("close", () => {
        // Before "connect", the 502 answer must get out first.
        if (connected) cut();
      });
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function splitTarget(target: string): { host: string; port: number } {
  const i = target.lastIndexOf(":");
  return { host: target.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(target.slice(i + 1)) };
}
