/**
 * A fake Teleport Proxy with TLS routing: it peeks at each connection's TLS
 * ClientHello and, when the first ALPN protocol is the expected
 * `teleport-auth@<hex>.teleport.cluster.local`, forwards the raw TCP stream
 * to a backend (the fake Auth server's TLS port), so the handshake is mutual
 * TLS end to end; anything else gets a fatal `no_application_protocol` alert
 * and a closed connection. Also the ClientHello parser it uses. Test-only.
 */

import { Buffer } from "node:buffer";
import * as net from "node:net";

/** Largest ClientHello we buffer before giving up on a connection. */
const MAX_CLIENT_HELLO_BYTES = 64 * 1024;
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
}

export interface RoutingProxy {
  /** "127.0.0.1:<port>". */
  readonly addr: string;
  readonly port: number;
  /** Every parsed ClientHello, in arrival order. */
  readonly hellos: ClientHelloInfo[];
  /** How many connections were forwarded / refused. */
  readonly counts: { forwarded: number; refused: number };
  /** Cuts every open connection (forces clients to reconnect). */
  dropConnections(): void;
  /** Sends new connections to another backend from now on. */
  setBackend(backend: { host: string; port: number }): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts the fake proxy on 127.0.0.1:0. */
export async function startRoutingProxy(opts: RoutingProxyOptions): Promise<RoutingProxy> {
  const sockets = new Set<net.Socket>();
  const hellos: ClientHelloInfo[] = [];
  const counts = { forwarded: 0, refused: 0 };
  let backend = opts.backend;
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };

  const server = net.createServer((client) => {
    track(client);
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
      if (hello.alpn[0] !== opts.expectedAlpn) {
        counts.refused++;
        client.end(ALERT_NO_APPLICATION_PROTOCOL);
        return;
      }
      counts.forwarded++;
      const upstream = net.connect(backend.port, backend.host, () => {
        upstream.write(buffered);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      track(upstream);
      const cut = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("close", cut);
      upstream.on("close", cut);
    };
    client.on("data", onData);
  });
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
    dropConnections,
    setBackend: (b) => {
      backend = b;
    },
    close: () =>
      new Promise<void>((resolve) => {
        dropConnections();
        server.close(() => resolve());
      }),
  };
}
