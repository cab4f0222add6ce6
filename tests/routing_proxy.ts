/**
 * A fake Teleport Proxy with TLS routing: it peeks at each connection's TLS
 * ClientHello and, when the first ALPN protocol is the expected
 * `teleport-auth@<hex>.teleport.cluster.local`, forwards the raw TCP stream
 * to a backend (the fake Auth server's TLS port), so the handshake is mutual
 * TLS end to end; anything else gets a fatal `no_application_protocol` alert
 * and a closed connection (or, with `refuse: "stall"`, no answer at all).
 *
 * It also serves what Teleport's Proxy serves over HTTP/1.1 for clients
 * behind an L7 load balancer: `GET /webapi/find` (TLS routing on) and
 * `GET /webapi/connectionupgrade`, a WebSocket (sub-protocols `alpn-ping`,
 * with pings it expects pongs for, and `alpn`) or the legacy `Upgrade: alpn`
 * (a raw stream after 101), whose stream it routes by ClientHello as above.
 * That HTTP arrives in plain text (from a load balancer such as nginx in
 * front of it), or, with `loadBalancer`, inside TLS it terminates itself with
 * that certificate: then it stands for a load balancer and the proxy behind
 * it, and no connection is routed before an upgrade. Also the ClientHello
 * parser it uses. Test-only.
 */

import { Buffer } from "node:buffer";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
// @ts-types="npm:@types/ws@8.18.1"
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import { authAlpnProtocol } from "../src/teleport/dial.ts";
import type { Defer } from "./bounded.ts";
import type { Pem } from "./pki.ts";

/** Largest ClientHello we buffer before giving up on a connection. */
const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
/** Largest HTTP request head we read. */
const MAX_HTTP_HEAD_BYTES = 16 * 1024;
/** Default interval of the WebSocket pings on `alpn-ping` upgrades (Teleport's is 30 s). */
const DEFAULT_PING_INTERVAL_MS = 100;
/** TLS record content type: handshake. */
const RECORD_HANDSHAKE = 22;
/** Handshake message type: ClientHello. */
const HANDSHAKE_CLIENT_HELLO = 1;
/** Extension numbers. */
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
/** A fatal `no_application_protocol` (120) alert record, TLS 1.2 framing. */
const ALERT_NO_APPLICATION_PROTOCOL = Uint8Array.of(21, 3, 3, 0, 2, 2, 120);

/** What a ClientHello said that routing cares about. */
export interface ClientHelloInfo {
  /** ALPN protocols offered, in order; empty without the extension. */
  alpn: string[];
  /** SNI host name, if sent. */
  serverName?: string;
}

/**
 * Parses the ClientHello at the start of a TLS stream. Returns `undefined`
 * while more bytes are needed (the message may span several records);
 * throws `SyntaxError` when the bytes are not a ClientHello.
 */
export function parseClientHello(data: Uint8Array): ClientHelloInfo | undefined {
  // Reassemble the handshake message from consecutive handshake records.
  const fragments: Uint8Array[] = [];
  let have = 0;
  let need: number | undefined;
  let at = 0;
  while (need === undefined || have < need) {
    if (data.length < at + 5) return undefined;
    const type = data[at];
    const length = u16(data, at + 3);
    if (type !== RECORD_HANDSHAKE) {
      throw new SyntaxError(`Not a TLS handshake record: type ${type}`);
    }
    if (data[at + 1] !== 3) throw new SyntaxError(`Not a TLS record: version ${data[at + 1]}`);
    if (length === 0 || length > 16384 + 2048) {
      throw new SyntaxError(`Bad TLS record length ${length}`);
    }
    if (data.length < at + 5 + length) return undefined;
    fragments.push(data.subarray(at + 5, at + 5 + length));
    have += length;
    at += 5 + length;
    if (need === undefined && have >= 4) {
      const head = concat(fragments);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) {
        throw new SyntaxError(`Not a ClientHello: handshake type ${head[0]}`);
      }
      need = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
    }
  }
  const msg = concat(fragments).subarray(4, need);
  return parseClientHelloBody(msg);
}

function parseClientHelloBody(body: Uint8Array): ClientHelloInfo {
  const r = new Reader(body);
  r.skip(2 + 32); // legacy_version, random
  r.skip(r.u8()); // legacy_session_id
  r.skip(r.u16()); // cipher_suites
  r.skip(r.u8()); // legacy_compression_methods
  const info: ClientHelloInfo = { alpn: [] };
  if (r.done()) return info; // no extensions at all
  const ext = new Reader(r.bytes(r.u16()));
  while (!ext.done()) {
    const type = ext.u16();
    const data = new Reader(ext.bytes(ext.u16()));
    if (type === EXT_ALPN) {
      const list = new Reader(data.bytes(data.u16()));
      while (!list.done()) info.alpn.push(new TextDecoder().decode(list.bytes(list.u8())));
    } else if (type === EXT_SERVER_NAME) {
      const list = new Reader(data.bytes(data.u16()));
      while (!list.done()) {
        const nameType = list.u8();
        const name = list.bytes(list.u16());
        if (nameType === 0) info.serverName = new TextDecoder().decode(name);
      }
    }
  }
  return info;
}

class Reader {
  #at = 0;
  constructor(private readonly buf: Uint8Array) {}
  done(): boolean {
    return this.#at >= this.buf.length;
  }
  u8(): number {
    return this.bytes(1)[0]!;
  }
  u16(): number {
    return u16(this.bytes(2), 0);
  }
  skip(n: number): void {
    this.bytes(n);
  }
  bytes(n: number): Uint8Array {
    if (this.#at + n > this.buf.length) throw new SyntaxError("Truncated ClientHello");
    const out = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export interface RoutingProxyOptions {
  /** The ALPN protocol that must come first, e.g. `authAlpnProtocol("teleport.example.com")`. */
  expectedAlpn: string;
  /** Where accepted streams go (the auth server's TLS listener); see `setBackend`. */
  backend: { host: string; port: number };
  /**
   * Stand for an L7 load balancer in front of the proxy: terminate every TLS
   * connection with this certificate (no ALPN negotiated) and serve HTTP in it.
   */
  loadBalancer?: Pem;
  /** What a connection that is not routed gets: a `no_application_protocol` alert (default) or nothing. */
  refuse?: "alert" | "stall";
  /** Forward every TLS connection, whatever its ALPN (a TCP load balancer in front of Auth). */
  forwardAll?: boolean;
  /** WebSocket ping interval on `alpn-ping` upgrades, ms. */
  pingIntervalMs?: number;
  /** What `/webapi/find` says about TLS routing; default `true`. */
  tlsRouting?: boolean;
  /** Serve `/webapi/connectionupgrade`; default `true` (`false`: 404, as an old proxy). */
  connUpgrade?: boolean;
}

/** An HTTP request the proxy got. */
export interface HttpRequestSeen {
  method: string;
  path: string;
  /** Lower-case names. */
  headers: Record<string, string>;
}

export interface RoutingProxy {
  /** "127.0.0.1:<port>". */
  readonly addr: string;
  readonly port: number;
  /** Every parsed ClientHello, in arrival order. */
  readonly hellos: ClientHelloInfo[];
  /** How many connections were forwarded / refused. */
  readonly counts: { forwarded: number; refused: number };
  /** Every HTTP request, in arrival order. */
  readonly requests: HttpRequestSeen[];
  /** Upgrades done, by kind, and pongs received for the proxy's WebSocket pings. */
  readonly upgrades: { websocket: number; legacy: number; pongs: number };
  /** Forwarded connections still open. */
  readonly openForwards: number;
  /** Sockets and streams still open, of every kind (client, upstream, upgraded). */
  readonly openConnections: number;
  /** Cuts every open connection (forces clients to reconnect). */
  dropConnections(): void;
  /** Sends new connections to another backend from now on. */
  setBackend(backend: { host: string; port: number }): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts the fake proxy on 127.0.0.1:0. */
export async function startRoutingProxy(opts: RoutingProxyOptions): Promise<RoutingProxy> {
  const sockets = new Set<Duplex>();
  const timers = new Set<ReturnType<typeof setInterval>>();
  const hellos: ClientHelloInfo[] = [];
  const counts = { forwarded: 0, refused: 0 };
  const requests: HttpRequestSeen[] = [];
  const upgrades = { websocket: 0, legacy: 0, pongs: 0 };
  let openForwards = 0;
  let backend = opts.backend;
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (offered) =>
      offered.has("alpn-ping") ? "alpn-ping" : offered.has("alpn") ? "alpn" : false,
  });
  const track = (s: Duplex) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };

  /** Routes a TLS stream by its ClientHello: forwarded raw to the backend, or refused. */
  const route = (client: Duplex, forwardAll: boolean) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      let hello: ClientHelloInfo | undefined;
      try {
        hello = parseClientHello(buffered);
        if (!hello && buffered.length > MAX_CLIENT_HELLO_BYTES) throw new SyntaxError("Too long");
      } catch {
        counts.refused++;
        client.destroy();
        return;
      }
      if (!hello) return;
      client.off("data", onData);
      client.pause();
      hellos.push(hello);
      if (hello.alpn[0] !== opts.expectedAlpn && !forwardAll) {
        counts.refused++;
        if (opts.refuse !== "stall") client.end(ALERT_NO_APPLICATION_PROTOCOL);
        // Stalled: read and drop what comes, or the client's FIN goes unnoticed.
        else client.resume();
        return;
      }
      counts.forwarded++;
      openForwards++;
      const upstream = net.connect(backend.port, backend.host, () => {
        upstream.write(buffered);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      track(upstream);
      let cutDone = false;
      const cut = () => {
        if (!cutDone) openForwards--;
        cutDone = true;
        client.destroy();
        upstream.destroy();
      };
      client.on("close", cut);
      upstream.on("close", cut);
    };
    client.on("data", onData);
  };

  /** Serves Teleport's HTTP endpoints on a stream whose first bytes are a request. */
  const serveHttp = (client: Duplex, first: Buffer) => {
    let buffered = first;
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      tryHead();
    };
    const tryHead = () => {
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buffered.length > MAX_HTTP_HEAD_BYTES) client.destroy();
        return;
      }
      client.off("data", onData);
      client.pause();
      const [requestLine = "", ...lines] = buffered.subarray(0, end).toString("latin1").split(
        "\r\n",
      );
      const rest = buffered.subarray(end + 4);
      const [method = "", path = ""] = requestLine.split(" ");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim().toLowerCase();
        headers[name] = headers[name] === undefined
          ? line.slice(colon + 1).trim()
          : `${headers[name]}, ${line.slice(colon + 1).trim()}`;
      }
      requests.push({ method, path, headers });
      const upgrade = (headers["upgrade"] ?? "").toLowerCase();
      if (method === "GET" && path === "/webapi/find") {
        const body = JSON.stringify({ proxy: { tls_routing_enabled: opts.tlsRouting ?? true } });
        client.end(
          `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${
            Buffer.byteLength(body)
          }\r\nConnection: close\r\n\r\n${body}`,
        );
      } else if (
        method === "GET" && path === "/webapi/connectionupgrade" && opts.connUpgrade !== false &&
        upgrade === "websocket"
      ) {
        const req = { method, url: path, headers } as unknown as Parameters<
          typeof wss.handleUpgrade
        >[0];
        wss.handleUpgrade(req, client as net.Socket, rest, (ws: WebSocket) => {
          upgrades.websocket++;
          if (ws.protocol === "alpn-ping") {
            const timer = setInterval(
              () => ws.ping(),
              opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
            );
            timers.add(timer);
            ws.on("close", () => {
              clearInterval(timer);
              timers.delete(timer);
            });
          }
          ws.on("pong", () => upgrades.pongs++);
          const stream = createWebSocketStream(ws);
          track(stream);
          route(stream, false);
        });
      } else if (
        method === "GET" && path === "/webapi/connectionupgrade" && opts.connUpgrade !== false &&
        upgrade === "alpn"
      ) {
        upgrades.legacy++;
        client.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: alpn\r\nX-Teleport-Upgrade: alpn\r\n" +
            "Connection: Upgrade\r\n\r\n",
        );
        if (rest.length > 0) client.unshift(rest);
        route(client, false);
        client.resume();
      } else {
        client.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      }
    };
    client.on("data", onData);
    tryHead();
    client.resume();
  };

  const onConnection = (client: net.Socket) => {
    track(client);
    client.once("data", (first: Buffer) => {
      client.pause();
      if (first[0] === RECORD_HANDSHAKE) {
        client.unshift(first);
        route(client, opts.forwardAll ?? false);
        client.resume();
      } else {
        serveHttp(client, first);
      }
    });
  };
  const lb = opts.loadBalancer;
  const server = lb
    ? tls.createServer({ key: lb.key, cert: lb.cert }, (s) => {
      track(s);
      s.once("data", (first: Buffer) => serveHttp(s, first));
    })
    : net.createServer(onConnection);
  if (lb) server.on("tlsClientError", () => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const dropConnections = () => {
    for (const s of sockets) s.destroy();
  };
  return {
    addr: `127.0.0.1:${port}`,
    port,
    hellos,
    counts,
    requests,
    upgrades,
    get openForwards() {
      return openForwards;
    },
    get openConnections() {
      return sockets.size;
    },
    dropConnections,
    setBackend: (b) => {
      backend = b;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        dropConnections();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

/**
 * The proxy of the cluster `clusterName` in front of an auth server on
 * 127.0.0.1:`authPort`: it forwards what asks for that cluster's auth ALPN
 * protocol. Closed by `defer`.
 */
export async function startAuthRoutingProxy(
  defer: Defer,
  clusterName: string,
  authPort: number,
): Promise<RoutingProxy> {
  const proxy = await startRoutingProxy({
    expectedAlpn: authAlpnProtocol(clusterName),
    backend: { host: "127.0.0.1", port: authPort },
  });
  defer(() => proxy.close());
  return proxy;
}
