/**
 * Teleport's ALPN connection upgrade, for a Proxy behind an L7 load balancer
 * that terminates TLS (and so drops the ALPN protocol TLS routing needs):
 * TLS to the load balancer, `GET /webapi/connectionupgrade` asking for a
 * WebSocket with sub-protocol `alpn-ping` (or the legacy `Upgrade: alpn`),
 * and a byte stream out of it that the TLS to the Auth Service runs inside.
 * Also whether the upgrade is needed, decided as Teleport's Go client decides
 * it: `TELEPORT_TLS_ROUTING_CONN_UPGRADE` when set, else the proxy's
 * `/webapi/find` must say TLS routing is on and a test TLS dial must fail to
 * negotiate the ALPN protocol it offered.
 *
 * The WebSocket framing (masking, ping/pong, close) is the `ws` package's.
 */

import { Buffer } from "node:buffer";
import { systemTrustedCas } from "../lib/system_cas.ts";
import { caOption } from "../lib/_tls_peer_chain_deno.ts";
import * as http from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
// @ts-types="npm:@types/ws@8.18.1"
import type WebSocket from "ws";
import { splitHostPort } from "./_address.ts";
import type { ConnUpgradeMode } from "./_dial_plan.ts";
import { dialTcp, type Env } from "./_https_proxy.ts";
import { awaitTlsHandshake, toError } from "./_tls_handshake.ts";

/** Budget of the test dial that decides whether the upgrade is needed (Teleport's: 5 s). */
const DETECT_TIMEOUT_MS = 5_000;
/** Largest `/webapi/find` answer read. */
const MAX_FIND_RESPONSE_BYTES = 64 * 1024;
/** Largest answer head read from the proxy in legacy mode. */
const MAX_UPGRADE_RESPONSE_BYTES = 16 * 1024;
/** Largest WebSocket message accepted from the proxy (it sends what it reads, TLS records at most 16 KiB). */
const MAX_WS_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Teleport's variable forcing the upgrade on or off (`api/defaults.TLSRoutingConnUpgradeEnvVar`). */
export const CONN_UPGRADE_ENV = "TELEPORT_TLS_ROUTING_CONN_UPGRADE";
/** Teleport ≤ 17's variable choosing the legacy upgrade: `legacy`. */
export const CONN_UPGRADE_MODE_ENV = "TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE";
/** The Proxy's discovery endpoint (`webclient.Find`): says whether TLS routing is on. */
export const FIND_PATH = "/webapi/find";
/** The Proxy's upgrade endpoint (`constants.WebAPIConnUpgrade`). */
export const CONN_UPGRADE_PATH = "/webapi/connectionupgrade";
/** WebSocket sub-protocol: the proxy sends WebSocket pings, we answer pongs. */
export const SUBPROTOCOL_ALPN_PING = "alpn-ping";
/** Legacy upgrade type: a raw stream after the 101 answer. */
export const UPGRADE_TYPE_ALPN = "alpn";
/** What the test dial offers: Teleport's reverse-tunnel ALPN protocol, which a Proxy negotiates. */
const DETECT_ALPN = "teleport-reversetunnel";

/** Verification failures that mean "this chain does not lead to a trusted root". */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/**
 * `TELEPORT_TLS_ROUTING_CONN_UPGRADE` for `addr`, read exactly as Teleport's
 * `isALPNConnUpgradeRequiredByEnv` does: entries split on `,` or `;`; an
 * entry with `=` counts when it contains `<addr>=` (the whole "host:port",
 * found anywhere in the entry) and decides at once, an unparsable value
 * then meaning `false`; an entry without `=` is a bool for every address, the
 * last valid one winning; nothing that matches means `false`. Bools are
 * Teleport's (`yes`/`no`, `true`/`false`, `1`/`0`, `on`/`off`, `y`/`n`,
 * `yeah`/`nope`, any case). Returns `undefined` when the variable is unset
 * or empty (then the test dial decides).
 */
export function connUpgradeOverride(addr: string, env: Env): boolean | undefined {
  const value = env[CONN_UPGRADE_ENV];
  if (value === undefined || value === "") return undefined;
  let forAll = false;
  for (const token of value.split(/[;,]/)) {
    if (token === "") continue;
    if (token.includes("=")) {
      const at = token.indexOf(`${addr}=`);
      if (at >= 0) return teleportBool(token.slice(at + addr.length + 1)) ?? false;
      continue;
    }
    forAll = teleportBool(token) ?? forAll;
  }
  return forAll;
}

/** `api/utils.ParseBool`: `undefined` for anything it does not accept. */
function teleportBool(text: string): boolean | undefined {
  switch (text.toLowerCase()) {
    case "yes":
    case "yeah":
    case "y":
    case "true":
    case "1":
    case "on":
      return true;
    case "no":
    case "nope":
    case "n":
    case "false":
    case "0":
    case "off":
      return false;
  }
  return undefined;
}

/** The upgrade to ask for: legacy only when `TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE=legacy`. */
export function connUpgradeMode(env: Env): ConnUpgradeMode {
  return (env[CONN_UPGRADE_MODE_ENV] ?? "").toLowerCase() === "legacy" ? "legacy" : "websocket";
}

/**
 * The roots the load balancer's certificate is verified against, besides
 * `teleport.proxy_ca_file`: the system's and the runtime's bundle.
 */
export const systemRoots: () => readonly string[] = systemTrustedCas;

/** Whether to try the upgrade, and why (for errors and logs). */
export interface ConnUpgradeDecision {
  readonly required: boolean;
  readonly why: string;
  /**
   * Set when the test dial failed in a way the operator can fix (the load
   * balancer's certificate is not trusted): worth saying in a dial error.
   */
  readonly note?: string;
}

export interface DetectOptions {
  readonly env: Env;
  /** Roots trusted for the load balancer's certificate (system roots plus extras). */
  readonly cas: readonly string[];
  /** Budget, ms; default {@linkcode DETECT_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Teleport's `IsALPNConnUpgradeRequired`: the variable when set, else a TLS
 * dial to `addr` (through `HTTPS_PROXY` when it applies), verified against
 * `cas`, offering only `teleport-reversetunnel`: a server that answers with
 * a `no_application_protocol` alert, negotiates nothing or picks another
 * protocol is not a Teleport Proxy speaking TLS routing (a load balancer
 * terminates TLS there), so the upgrade is needed; any other failure means
 * it is not (the other routes will say what is wrong).
 */
export async function detectConnUpgrade(
  addr: string,
  opts: DetectOptions,
): Promise<ConnUpgradeDecision> {
  const forced = connUpgradeOverride(addr, opts.env);
  if (forced !== undefined) {
    return { required: forced, why: `${CONN_UPGRADE_ENV}=${opts.env[CONN_UPGRADE_ENV]}` };
  }
  const find = await findProxy(addr, opts).then(
    (answer) => ({ answer, error: undefined }),
    (error: unknown) => ({ answer: undefined, error: toError(error) }),
  );
  if (find.error) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    return notNeeded(`GET ${FIND_PATH} at ${addr} failed: ${find.error.message}`, find.error);
  }
  if (!find.answer?.tlsRoutingEnabled) {
    return { required: false, why: `the proxy at ${addr} has TLS routing off` };
  }
  return await testDial(addr, opts);
}

/** "Not needed", with a note for the operator when the reason is a certificate they can fix. */
function notNeeded(why: string, error: Error): ConnUpgradeDecision {
  let cause: unknown = error;
  while (
    cause instanceof Error && (cause as { code?: unknown }).code === undefined && cause.cause
  ) {
    cause = cause.cause;
  }
  const code = (cause as { code?: unknown } | undefined)?.code;
  const fixable = typeof code === "string" &&
    (UNTRUSTED_CERT_CODES.has(code) || code === "ERR_TLS_CERT_ALTNAME_INVALID" ||
      code === "CERT_HAS_EXPIRED");
  return fixable ? { required: false, why, note: why } : { required: false, why };
}

/** What `/webapi/find` told about the proxy. */
interface FindAnswer {
  readonly tlsRoutingEnabled: boolean;
}

/**
 * `GET https://<addr>/webapi/find` (Teleport's `webclient.Find`), the
 * certificate verified against `opts.cas`: whether `addr` is a Teleport
 * Proxy, and whether its TLS routing is on.
 */
export async function findProxy(addr: string, opts: DetectOptions): Promise<FindAnswer> {
  return await withDeadline(opts, async (track, signal) => {
    const { host } = splitHostPort(addr);
    const s = tls.connect({
      socket: track(await dialTcp(addr, opts.env, signal)),
      ...tlsNameOptions(host),
      ...caOption(opts.cas, "TLSv1.2"),
      ALPNProtocols: ["http/1.1"],
      rejectUnauthorized: true,
    });
    track(s);
    s.on("error", () => {});
    await handshake(s).catch((e) => {
      throw new Error(describeOuterTlsError(e, host), { cause: e });
    });
    const { status, body } = await new Promise<{ status: number; body: string }>(
      (resolve, reject) => {
        const req = http.request({
          createConnection: () => s,
          method: "GET",
          path: FIND_PATH,
          headers: { Host: addr, Accept: "application/json", Connection: "close" },
        }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_FIND_RESPONSE_BYTES) {
              req.destroy(new Error(`its answer is larger than ${MAX_FIND_RESPONSE_BYTES} bytes`));
            } else chunks.push(chunk);
          });
          res.on(
            "end",
            () =>
              resolve({
                status: res.statusCode ?? 0,
                body: Buffer.concat(chunks).toString("utf8"),
              }),
          );
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      },
    );
    if (status !== 200) throw new Error(`HTTP ${status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new Error(`not a Teleport Proxy: its answer is not JSON`);
    }
    const proxy = (parsed as { proxy?: { tls_routing_enabled?: unknown } } | null)?.proxy;
    if (!proxy || typeof proxy !== "object") {
      throw new Error(`not a Teleport Proxy: its answer has no "proxy" section`);
    }
    return { tlsRoutingEnabled: proxy.tls_routing_enabled === true };
  });
}

/**
 * Runs `fn` within `opts.timeoutMs` (default {@linkcode DETECT_TIMEOUT_MS})
 * and `opts.signal`; whatever `fn` tracks is destroyed when it ends, and a
 * socket tracked after the deadline at once. The signal `fn` gets aborts
 * when it ends, for what is not tracked yet (a dial still under way).
 */
async function withDeadline<T>(
  opts: DetectOptions,
  fn: (
    track: <S extends { destroy(): void }>(s: S) => S,
    signal: AbortSignal,
  ) => Promise<T>,
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DETECT_TIMEOUT_MS;
  const tracked: { destroy(): void }[] = [];
  const ended = new AbortController();
  let finished = false;
  const track = <S extends { destroy(): void }>(s: S): S => {
    if (finished) s.destroy();
    else tracked.push(s);
    return s;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    onAbort = () => reject(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    opts.signal?.throwIfAborted();
    const running = fn(track, ended.signal);
    running.catch(() => {});
    return await Promise.race([running, stop]);
  } finally {
    finished = true;
    ended.abort(new Error("the detection ended"));
    clearTimeout(timer);
    if (onAbort) opts.signal?.removeEventListener("abort", onAbort);
    for (const s of tracked) s.destroy();
  }
}

/**
 * Teleport's `testALPNDropped`: a TLS dial offering only
 * `teleport-reversetunnel`; the upgrade is needed when the server refuses
 * it with an alert, negotiates nothing or picks something else.
 */
async function testDial(addr: string, opts: DetectOptions): Promise<ConnUpgradeDecision> {
  const { host } = splitHostPort(addr);
  try {
    const chosen = await withDeadline(opts, async (track, signal) => {
      const s = track(tls.connect({
        socket: track(await dialTcp(addr, opts.env, signal)),
        ...tlsNameOptions(host),
        ...caOption(opts.cas, "TLSv1.2"),
        ALPNProtocols: [DETECT_ALPN],
        rejectUnauthorized: true,
      }));
      s.on("error", () => {});
      await handshake(s);
      return s.alpnProtocol || "";
    });
    if (chosen === DETECT_ALPN) {
      return { required: false, why: `${addr} negotiated ALPN ${DETECT_ALPN}` };
    }
    return {
      required: true,
      why: `${addr} negotiated ${
        chosen ? `another ALPN protocol (${JSON.stringify(chosen)})` : "no ALPN protocol"
      } when offered ${DETECT_ALPN}`,
    };
  } catch (e) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    const error = toError(e);
    if (/no.?application.?protocol/i.test(error.message)) {
      return { required: true, why: `${addr} refused ALPN ${DETECT_ALPN} (${error.message})` };
    }
    return notNeeded(
      `the test dial to ${addr} failed: ${describeOuterTlsError(error, host)}`,
      error,
    );
  }
}

export interface UpgradeOptions {
  /** The Proxy address as the operator gave it ("host:port"): TLS server name and `Host`. */
  readonly addr: string;
  readonly mode: ConnUpgradeMode;
  /** Roots trusted for the load balancer's certificate. */
  readonly cas: readonly string[];
  /** Told as each step starts. */
  readonly onPhase: (phase: string) => void;
  /** Holds what is being set up, so the caller can cut it. */
  readonly pending: Set<{ destroy(): void }>;
}

/**
 * On `socket` (connected to the load balancer, or tunnelled to it): TLS
 * verified against `cas` with the proxy's host name, then the upgrade.
 * Resolves with the stream the proxy routes by its first TLS ClientHello;
 * rejects with an `Error` saying which step failed and why.
 */
export async function upgradeConnection(socket: Socket, opts: UpgradeOptions): Promise<Duplex> {
  const { host } = splitHostPort(opts.addr);
  opts.onPhase(`in the TLS handshake with the load balancer at ${opts.addr}`);
  const outer = tls.connect({
    socket,
    ...tlsNameOptions(host),
    ...caOption(opts.cas, "TLSv1.2"),
    rejectUnauthorized: true,
  });
  opts.pending.add(outer);
  outer.on("error", () => {});
  try {
    await handshake(outer).catch((e) => {
      throw new Error(
        `TLS to the load balancer at ${opts.addr} failed: ${describeOuterTlsError(e, host)}`,
        { cause: e },
      );
    });
    opts.onPhase(`asking ${opts.addr} for the connection upgrade (GET ${CONN_UPGRADE_PATH})`);
    return opts.mode === "websocket"
      ? await webSocketUpgrade(outer, opts)
      : await legacyUpgrade(outer, opts.addr);
  } catch (e) {
    outer.destroy();
    throw e;
  } finally {
    opts.pending.delete(outer);
  }
}

/**
 * `Upgrade: websocket` with sub-protocol `alpn-ping`, through `ws`; the stream
 * carries binary messages. `ws` is loaded here, on first use: most
 * deployments never take this route (startup time and memory).
 */
async function webSocketUpgrade(outer: tls.TLSSocket, opts: UpgradeOptions): Promise<Duplex> {
  const { default: WebSocketClient, createWebSocketStream } = await import("ws");
  const ws: WebSocket = new WebSocketClient(`ws://${opts.addr}${CONN_UPGRADE_PATH}`, [
    SUBPROTOCOL_ALPN_PING,
  ], {
    // The TLS is ours (verified as above); ws speaks HTTP/1.1 and WebSocket on it.
    createConnection: () => outer,
    perMessageDeflate: false,
    followRedirects: false,
    maxPayload: MAX_WS_MESSAGE_BYTES,
  });
  const cut = { destroy: () => ws.terminate() };
  opts.pending.add(cut);
  return new Promise<Duplex>((resolve, reject) => {
    const fail = (text: string, cause?: unknown) => {
      opts.pending.delete(cut);
      ws.terminate();
      reject(new Error(`${opts.addr} refused the connection upgrade: ${text}`, { cause }));
    };
    ws.once("unexpected-response", (_req, res) => {
      const status = `HTTP ${res.statusCode}${res.statusMessage ? ` ${res.statusMessage}` : ""}`;
      fail(
        res.statusCode === 404
          ? `${status} (a Proxy older than Teleport 15.1, or a load balancer that does not ` +
            `forward ${CONN_UPGRADE_PATH})`
          : status,
      );
    });
    ws.once("error", (e) => fail(toError(e).message, e));
    ws.once("close", () => fail("the connection closed before the WebSocket opened"));
    ws.once("open", () => {
      opts.pending.delete(cut);
      ws.removeAllListeners("error");
      ws.removeAllListeners("close");
      ws.removeAllListeners("unexpected-response");
      // Errors after the handshake reach the stream's user (the inner TLS) through the stream.
      ws.on("error", () => {});
      resolve(createWebSocketStream(ws));
    });
  });
}

/** The legacy `Upgrade: alpn`: after the 101 answer the TLS socket itself is the stream. */
function legacyUpgrade(outer: tls.TLSSocket, addr: string): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = () => {
      outer.off("data", onData);
      outer.off("close", onClose);
    };
    const fail = (text: string) => {
      done();
      reject(new Error(`${addr} refused the connection upgrade: ${text}`));
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buffered.length > MAX_UPGRADE_RESPONSE_BYTES) fail("its answer head is overlong");
        return;
      }
      done();
      outer.pause();
      const statusLine = buffered.subarray(0, end).toString("latin1").split("\r\n")[0] ?? "";
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (!m) return fail(`not an HTTP answer: ${JSON.stringify(statusLine.slice(0, 80))}`);
      if (m[1] !== "101") return fail(`HTTP ${m[1]}${m[2] ? ` ${m[2]}` : ""}`);
      const rest = buffered.subarray(end + 4);
      if (rest.length > 0) outer.unshift(rest);
      resolve(outer);
    };
    const onClose = () => fail("the connection closed before the answer");
    outer.on("data", onData);
    outer.once("close", onClose);
    outer.write(
      `GET ${CONN_UPGRADE_PATH} HTTP/1.1\r\nHost: ${addr}\r\n` +
        `Upgrade: ${UPGRADE_TYPE_ALPN}\r\nX-Teleport-Upgrade: ${UPGRADE_TYPE_ALPN}\r\n` +
        "Connection: Upgrade\r\n\r\n",
    );
  });
}

/** SNI and the name to verify: the host, except that an IP address gets no SNI. */
function tlsNameOptions(host: string): { servername?: string; host: string } {
  return /^[\d.]+$/.test(host) || host.includes(":") ? { host } : { servername: host, host };
}

/** A plain TLS handshake (the peer verified), errors as they come. */
function handshake(s: tls.TLSSocket): Promise<void> {
  return awaitTlsHandshake(
    s,
    (e) => e,
    () => new Error("the server closed the connection during the TLS handshake"),
    true,
  );
}

/** A failed TLS handshake with the load balancer, in words an operator can act on. */
function describeOuterTlsError(e: unknown, host: string): string {
  const error = toError(e);
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && UNTRUSTED_CERT_CODES.has(code)) {
    return `its certificate is not signed by a trusted CA: neither the system roots nor the ` +
      `proxy CA file hold its issuer (${error.message})`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `its certificate is not valid for ${host} (${error.message})`;
  }
  if (code === "CERT_HAS_EXPIRED") return `its certificate has expired (${error.message})`;
  return error.message;
}
