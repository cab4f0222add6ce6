/**
 * `HTTPS_PROXY` / `NO_PROXY`: which HTTP CONNECT proxy, if any, stands
 * between us and a Teleport address (the rules of Go's
 * golang.org/x/net/http/httpproxy, as Teleport's Go client applies them),
 * the CONNECT exchange that opens the tunnel through it, and a TCP dial that
 * goes through it (for connections grpc-js does not open itself).
 */

import { Buffer } from "node:buffer";
import { connect, isIP, type Socket } from "node:net";
import { splitHostPort } from "./_address.ts";

/** Largest HTTP CONNECT answer head we read before giving up on a proxy. */
const MAX_CONNECT_RESPONSE_BYTES = 16 * 1024;
/** Default port of an `http://` proxy URL without one (as Go's net/http). */
const HTTP_PROXY_DEFAULT_PORT = 80;

/** Environment variables, e.g. `Deno.env.toObject()`; injected so tests never touch the process's. */
export type Env = Readonly<Record<string, string | undefined>>;

/** An HTTP CONNECT proxy to go through. */
export interface HttpProxy {
  /** `http://host:port`, without credentials: safe to log. */
  readonly display: string;
  /** Host and port, as a grpc-js target (IPv6 in brackets). */
  readonly hostPort: string;
  /** `Proxy-Authorization` value from the URL's user info, if any. */
  readonly authorization?: string;
}

/**
 * The HTTP CONNECT proxy for reaching `addr`, following Go's
 * `httpproxy.FromEnvironment` for an `https://` URL (what Teleport's Go client
 * uses): `HTTPS_PROXY` (else `https_proxy`), minus `NO_PROXY` (else
 * `no_proxy`) and minus `localhost` and loopback addresses, which never go
 * through a proxy. `NO_PROXY` entries, comma-separated: `*` (everything),
 * `example.com` (it and its subdomains), `.example.com` / `*.example.com`
 * (subdomains only), any of those with `:port`, IP addresses (optionally
 * `ip:port`, `[v6]:port`) and CIDR ranges. A proxy value without a scheme is
 * taken as `http://`; other schemes than `http:` are refused with an error.
 */
export function httpsProxyFor(addr: string, env: Env): HttpProxy | undefined {
  const raw = firstNonEmpty(env, "HTTPS_PROXY", "https_proxy");
  if (raw === undefined) return undefined;
  const { host, port } = splitHostPort(addr);
  if (!useProxy(host.toLowerCase(), port, firstNonEmpty(env, "NO_PROXY", "no_proxy") ?? "")) {
    return undefined;
  }
  return parseProxyUrl(raw);
}

/**
 * Asks the proxy at the other end of `socket` for a tunnel to `target`;
 * resolves once it answered 2xx, with the socket paused and any bytes read
 * past the answer put back.
 */
export function httpConnect(socket: Socket, target: string, proxy: HttpProxy): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = () => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const fail = (text: string, cause?: unknown) => {
      done();
      reject(new Error(`HTTPS proxy ${proxy.display} ${text}`, cause ? { cause } : {}));
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buffered.length > MAX_CONNECT_RESPONSE_BYTES) {
          fail("sent an overlong answer to CONNECT");
        }
        return;
      }
      done();
      socket.pause();
      const statusLine = buffered.subarray(0, end).toString("latin1").split("\r\n")[0] ?? "";
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (!m) {
        reject(
          new Error(
            `HTTPS proxy ${proxy.display} sent an invalid answer to CONNECT: ${
              JSON.stringify(statusLine)
            }`,
          ),
        );
        return;
      }
      const status = Number(m[1]);
      if (status < 200 || status > 299) {
        reject(
          new Error(
            `HTTPS proxy ${proxy.display} refused CONNECT to ${JSON.stringify(target)}: ${status}${
              m[2] ? ` ${m[2]}` : ""
            }`,
          ),
        );
        return;
      }
      const rest = buffered.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve();
    };
    const onError = (e: unknown) =>
      fail(`failed: ${e instanceof Error ? e.message : String(e)}`, e);
    const onClose = () => fail("closed the connection before answering CONNECT");
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    const auth = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : "";
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
  });
}

/**
 * A TCP connection to `addr` ("host:port"), tunnelled through the HTTP
 * CONNECT proxy `env` names for it, if any. Rejects with the reason, the
 * socket destroyed; also when `signal` aborts first (a proxy that never
 * answers CONNECT would otherwise keep the socket open for as long as it
 * likes, one more at every new attempt).
 */
export async function dialTcp(addr: string, env: Env, signal?: AbortSignal): Promise<Socket> {
  signal?.throwIfAborted();
  const proxy = httpsProxyFor(addr, env);
  const { host, port } = splitHostPort(proxy ? proxy.hostPort : addr);
  const socket = connect({ host, port });
  // With an error, so that the connect or CONNECT step waiting on the socket fails with it.
  const onAbort = () =>
    socket.destroy(
      signal?.reason instanceof Error ? signal.reason : new Error("dial abandoned"),
    );
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve();
      });
      socket.once("error", reject);
    });
    if (proxy) await httpConnect(socket, addr, proxy);
    return socket;
  } catch (e) {
    socket.destroy();
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

function firstNonEmpty(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

/** The schemes Go keeps in a proxy value; with any other it is read again as http://. */
const PROXY_SCHEMES: ReadonlySet<string> = new Set(["http:", "https:", "socks5:"]);
/** A URL's "scheme://" ("http://", "socks5://"…). */
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/** The value as it may be shown: without the user info (a proxy password) it may carry. */
function shownProxyValue(raw: string): string {
  const at = raw.lastIndexOf("@");
  if (at === -1) return raw;
  const scheme = SCHEME.exec(raw)?.[0] ?? "";
  return `${scheme}[redacted]${raw.slice(at)}`;
}

function parseProxyUrl(raw: string): HttpProxy {
  const parse = (text: string) => {
    try {
      return new URL(text);
    } catch {
      return undefined;
    }
  };
  let url = parse(raw);
  // Go retries "host:port" and other values without a host or a proxy's scheme as http://
  // ("ftp:3128" is the host ftp); not one that has a "scheme://" already
  // ("http://u:p@host:99999" would become a proxy named "http").
  if ((!url || url.host === "" || !PROXY_SCHEMES.has(url.protocol)) && !SCHEME.test(raw)) {
    url = parse(`http://${raw}`);
  }
  if (!url || url.host === "") {
    // No cause: the URL parser's error repeats the value, password and all.
    throw new Error(`Invalid HTTPS_PROXY ${JSON.stringify(shownProxyValue(raw))}: not a URL`);
  }
  if (url.protocol !== "http:") {
    throw new Error(
      `Unsupported HTTPS_PROXY scheme ${
        JSON.stringify(url.protocol)
      }: only http:// proxies are supported`,
    );
  }
  const port = url.port === "" ? HTTP_PROXY_DEFAULT_PORT : Number(url.port);
  const hostPort = `${url.hostname}:${port}`;
  const authorization = url.username === "" ? undefined : "Basic " + Buffer.from(
    `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`,
  ).toString("base64");
  return {
    display: `http://${hostPort}`,
    hostPort,
    ...(authorization ? { authorization } : {}),
  };
}

/** Go's `config.useProxy`: false for localhost, loopback and NO_PROXY matches. */
function useProxy(host: string, port: number, noProxy: string): boolean {
  if (host === "localhost") return false;
  const ip = parseIp(host);
  if (ip && isLoopback(ip)) return false;
  for (const entry of noProxy.split(",")) {
    const p = entry.trim().toLowerCase();
    if (p === "") continue;
    if (p === "*") return false;
    const cidr = parseCidr(p);
    if (cidr) {
      if (ip && cidrContains(cidr, ip)) return false;
      continue;
    }
    let pHost = p;
    let pPort: number | undefined;
    const hp = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(p);
    if (hp) {
      pHost = hp[1] ?? hp[2] ?? "";
      pPort = Number(hp[3]);
      if (pHost === "") continue;
    }
    const portOk = pPort === undefined || pPort === port;
    const pIp = parseIp(pHost);
    if (pIp) {
      if (ip && ipEqual(pIp, ip) && portOk) return false;
      continue;
    }
    if (pHost.startsWith("*.")) pHost = pHost.slice(1);
    // "example.com" matches itself and subdomains; ".example.com" only subdomains.
    const matchHost = !pHost.startsWith(".");
    const suffix = matchHost ? `.${pHost}` : pHost;
    if ((host.endsWith(suffix) || (matchHost && host === pHost)) && portOk) return false;
  }
  return true;
}

/** IPv4 as 4 bytes, IPv6 as 16; IPv4-mapped IPv6 folds to 4 (as Go's `To4`). */
function parseIp(text: string): Uint8Array | undefined {
  const s = text.replace(/%.*$/, "");
  const kind = isIP(s);
  if (kind === 4) return Uint8Array.from(s.split(".").map(Number));
  if (kind !== 6) return undefined;
  let body = s;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(body);
  if (v4?.[1]) {
    tail.push(...v4[1].split(".").map(Number));
    body = body.slice(0, -v4[1].length);
    if (body.endsWith(":") && !body.endsWith("::")) body = body.slice(0, -1);
  }
  const groups = (part: string) => part === "" ? [] : part.split(":").map((g) => parseInt(g, 16));
  const [headText = "", restText] = body.split("::");
  const head = groups(headText);
  const rest = restText === undefined ? [] : groups(restText);
  const fill = 8 - tail.length / 2 - head.length - rest.length;
  const words = [...head, ...Array<number>(Math.max(fill, 0)).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  bytes.set(tail, 12);
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

function isLoopback(ip: Uint8Array): boolean {
  if (ip.length === 4) return ip[0] === 127;
  return ip.subarray(0, 15).every((b) => b === 0) && ip[15] === 1;
}

function ipEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function parseCidr(text: string): { net: Uint8Array; bits: number } | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m?.[1]) return undefined;
  const net = parseIp(m[1]);
  const bits = Number(m[2]);
  // An IPv4-mapped network folds to IPv4 with its prefix shortened by 96.
  const isMappedV6 = net?.length === 4 && m[1].includes(":");
  const effective = isMappedV6 ? bits - 96 : bits;
  if (!net || effective < 0 || effective > net.length * 8) return undefined;
  return { net, bits: effective };
}

function cidrContains(cidr: { net: Uint8Array; bits: number }, ip: Uint8Array): boolean {
  if (cidr.net.length !== ip.length) return false;
  for (let bit = 0; bit < cidr.bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    const i = bit >> 3;
    if (((cidr.net[i] ?? 0) & mask) !== ((ip[i] ?? 0) & mask)) return false;
  }
  return true;
}
