/**
 * How the plugin reaches the Auth Service gRPC API: mutual TLS with the
 * identity's certificates, directly (ALPN `h2`) or through a Proxy with TLS
 * routing (Teleport's auth ALPN protocol first), optionally tunnelled through
 * an HTTP CONNECT proxy named by `HTTPS_PROXY`/`NO_PROXY`. Owns the hook into
 * grpc-js's connection setup; knows nothing about Teleport's proto (the
 * caller's probe does the talking).
 *
 * The hook: grpc-js 1.14.7 asks a channel's `ChannelCredentials` for a
 * "secure connector" once per subchannel (`_createSecureConnector`) and calls
 * its `connect(socket)` with every new TCP connection. Our connector reads the
 * current credentials at that moment, so a refreshed identity file reaches
 * new connections without rebuilding the client. These are grpc-js internals:
 * the version is pinned in deno.json and `dial_test.ts` fails loudly when the
 * hook stops being called.
 *
 * Also owns a workaround for a Deno 2.9 bug (denoland/deno#36788): the
 * process dies inside nghttp2 when a server's GOAWAY reaches a `node:http2`
 * client session. The connector hands grpc-js a stream that never lets a
 * GOAWAY frame through: the connection just ends there instead, which
 * grpc-js handles like any lost connection (see {@linkcode GoawayGuard}).
 */

import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { isIP, type Socket } from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";

/** Teleport's API server name: SNI and the name verified in the server's certificate. */
export const TELEPORT_API_SERVER_NAME = "teleport.cluster.local";
/** The Auth Service's usual gRPC port: only the direct plan makes sense there. */
const AUTH_PORT = 3025;
/** The Proxy's usual ports with TLS routing (web/multiplexed listener). */
const PROXY_PORTS: readonly number[] = [443, 3080];
/** Budget for one new connection: CONNECT, TLS handshake and the server's first bytes. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Default budget for one plan's attempt in {@linkcode connectAuth} (SPEC: Ping within 10 s). */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
/** Largest HTTP CONNECT answer head we read before giving up on a proxy. */
const MAX_CONNECT_RESPONSE_BYTES = 16 * 1024;
/** Default port of an `http://` proxy URL without one (as Go's net/http). */
const HTTP_PROXY_DEFAULT_PORT = 80;

/** gRPC status codes that mean "no usable answer" rather than "the server said no". */
const STATUS_NOT_AN_ANSWER: ReadonlySet<number> = new Set([
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNAVAILABLE,
]);

/**
 * Channel options for every Auth client.
 * - keepalive: the server answers pings more often than every 60 s with
 *   GOAWAY too_many_pings; 20 s is enough to notice a dead peer. Pings are
 *   sent only while a call is open (the watch stream always is).
 * - `grpc.enable_http_proxy: 0`: proxies are ours to apply (see
 *   {@linkcode httpsProxyFor}); without this grpc-js would read lowercase
 *   `https_proxy`/`grpc_proxy` from the process and CONNECT a second time.
 * - `grpc.use_local_subchannel_pool: 1`: closing a client tears its
 *   connections down now, instead of when the global pool next sweeps.
 * - `grpc.max_reconnect_backoff_ms: 1000`: grpc-js's own wait between
 *   connection attempts grows to 120 s by default, and while it waits every
 *   call fails at once: after a long outage the watcher's reconnects (at
 *   least 2.5 s apart at their 5 s cap, SPEC §4) would fail against a server
 *   that is back. Kept under that, the watcher's backoff is the one that counts.
 * No metadata is added: a `version` header must never be sent unless it is a
 * real Teleport semver.
 */
export const CHANNEL_OPTIONS: Readonly<grpc.ChannelOptions> = Object.freeze({
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.enable_http_proxy": 0,
  "grpc.use_local_subchannel_pool": 1,
  "grpc.max_reconnect_backoff_ms": 1_000,
});

/** The identity's TLS material, PEM text. */
export interface TlsCredentials {
  /** The client's private key. */
  readonly key: string;
  /** The client certificate. */
  readonly cert: string;
  /** The Teleport CA certificates: the only roots trusted for the server. */
  readonly cas: readonly string[];
}

/**
 * Returns the current credentials; called for every new connection, so it
 * must be cheap (return what the identity refresher last loaded). Throwing
 * fails that connection attempt.
 */
export type CredentialsSource = () => TlsCredentials;

/** Environment variables, e.g. `Deno.env.toObject()`; injected so tests never touch the process's. */
export type Env = Readonly<Record<string, string | undefined>>;

/** One way to reach the Auth Service at an address. */
export type DialPlan =
  | { readonly kind: "direct"; readonly alpn: readonly string[] }
  | {
    readonly kind: "tls-routing";
    readonly alpn: readonly string[];
    readonly clusterName: string;
  };

/**
 * Teleport's ALPN protocol that asks a Proxy with TLS routing to forward the
 * TLS stream to the Auth Service of `clusterName`.
 */
export function authAlpnProtocol(clusterName: string): string {
  const hex = Buffer.from(clusterName, "utf8").toString("hex");
  return `teleport-auth@${hex}.${TELEPORT_API_SERVER_NAME}`;
}

/** The direct plan: TLS to the Auth Service itself. */
export const DIRECT_PLAN: DialPlan = Object.freeze({ kind: "direct", alpn: Object.freeze(["h2"]) });

/** The TLS routing plan for `clusterName`: the auth protocol first (the proxy reads only that), then `h2`. */
export function tlsRoutingPlan(clusterName: string): DialPlan {
  return { kind: "tls-routing", alpn: [authAlpnProtocol(clusterName), "h2"], clusterName };
}

/** Human words for a plan, as used in error messages. */
export function describePlan(plan: DialPlan): string {
  return plan.kind === "direct"
    ? "direct to Auth (ALPN h2)"
    : `TLS routing through the proxy (ALPN ${plan.alpn[0]})`;
}

/**
 * The attempts for `addr` ("host:port"), in order:
 * - port 3025 (Auth's port): [direct];
 * - ports 443 and 3080 (a Proxy's): [TLS routing, direct];
 * - any other port: [direct, TLS routing] — an Auth server on a custom port is
 *   more common than a proxy on one.
 * TLS routing needs the cluster name; without it that plan is left out.
 * Throws when `addr` is not "host:port".
 */
export function dialPlans(addr: string, clusterName: string | undefined): DialPlan[] {
  const { port } = splitHostPort(addr);
  const routing = clusterName ? [tlsRoutingPlan(clusterName)] : [];
  if (port === AUTH_PORT) return [DIRECT_PLAN];
  if (PROXY_PORTS.includes(port)) return [...routing, DIRECT_PLAN];
  return [DIRECT_PLAN, ...routing];
}

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

/** What grpc-js needs to open a channel for one plan; give all three to a client constructor. */
export interface AuthChannel {
  /** The Teleport address this reaches ("host:port"). */
  readonly addr: string;
  readonly plan: DialPlan;
  /** What grpc-js connects to: `addr`, or the HTTP proxy when one applies. */
  readonly target: string;
  readonly credentials: TeleportChannelCredentials;
  readonly options: grpc.ChannelOptions;
  /** The HTTP CONNECT proxy in the way, if any. */
  readonly proxy: HttpProxy | undefined;
  /** Plan and proxy in words, for logs and errors. */
  readonly description: string;
}

/**
 * Builds the channel for `plan` to `addr`. Throws when the proxy environment
 * is unusable (a configuration error, not a network one).
 */
export function authChannel(
  addr: string,
  plan: DialPlan,
  source: CredentialsSource,
  env: Env,
  hooks: { onGoaway?: (goaway: Goaway) => void } = {},
): AuthChannel {
  splitHostPort(addr);
  const proxy = httpsProxyFor(addr, env);
  const credentials = new TeleportChannelCredentials({
    source,
    alpn: plan.alpn,
    ...(proxy ? { connectThrough: { proxy, target: addr } } : {}),
    ...(hooks.onGoaway ? { onGoaway: hooks.onGoaway } : {}),
  });
  const options: grpc.ChannelOptions = proxy
    // Requests name Teleport, not the proxy grpc-js happens to be connected to.
    ? { ...CHANNEL_OPTIONS, "grpc.default_authority": addr }
    : { ...CHANNEL_OPTIONS };
  const description = describePlan(plan) + (proxy ? ` via HTTPS proxy ${proxy.display}` : "");
  return {
    addr,
    plan,
    target: proxy ? proxy.hostPort : addr,
    credentials,
    options,
    proxy,
    description,
  };
}

/**
 * Asks the server something through `channel` (the real client sends Ping).
 * It creates its own client, must close it when it fails and when `signal`
 * aborts (the attempt was abandoned), and gives it to the caller inside its
 * result when it succeeds.
 */
export type Probe<T> = (channel: AuthChannel, signal: AbortSignal) => Promise<T>;

export interface ConnectAuthOptions<T> {
  /** Cluster name, for the TLS routing plan; without it only direct is tried. */
  clusterName?: string | undefined;
  /** Process environment, for `HTTPS_PROXY`/`NO_PROXY`. */
  env: Env;
  /** Budget per plan, ms. Default {@linkcode DEFAULT_ATTEMPT_TIMEOUT_MS}. */
  timeoutMs?: number;
  probe: Probe<T>;
  signal?: AbortSignal;
  /** Told when a server sends GOAWAY on one of the channels made here. */
  onGoaway?: (goaway: Goaway) => void;
}

export interface Connected<T> {
  /** The channel whose probe answered: reuse it for the real client. */
  readonly channel: AuthChannel;
  /** What the probe returned. */
  readonly result: T;
  /** The plans that failed before this one. */
  readonly failedAttempts: readonly DialAttempt[];
}

/** One failed plan. */
export interface DialAttempt {
  readonly plan: DialPlan;
  /** Plan (and proxy) in words. */
  readonly description: string;
  /** Why it failed, in words. */
  readonly reason: string;
  readonly cause: unknown;
}

/** Every plan for an address failed; `attempts` says how each did. */
export class DialError extends Error {
  override name = "DialError";
  readonly addr: string;
  readonly attempts: readonly DialAttempt[];

  constructor(addr: string, attempts: readonly DialAttempt[], notes: readonly string[] = []) {
    const tried = attempts.map((a) => `${a.description}: ${a.reason}`);
    super(
      `Cannot reach Teleport at ${JSON.stringify(addr)}: tried ${[...tried, ...notes].join("; ")}`,
      {
        cause: new AggregateError(attempts.map((a) => a.cause)),
      },
    );
    this.addr = addr;
    this.attempts = attempts;
  }
}

/**
 * Tries {@linkcode dialPlans} for `addr` in order and returns the first whose
 * probe answered. A probe failing with a gRPC status other than UNAVAILABLE,
 * DEADLINE_EXCEEDED or CANCELLED after a TLS handshake succeeded means
 * Teleport was reached and said no (e.g. PERMISSION_DENIED): that error is
 * thrown as is, without trying further plans. When every plan fails, throws
 * one {@linkcode DialError} listing each attempt and why it failed.
 */
export async function connectAuth<T>(
  addr: string,
  source: CredentialsSource,
  opts: ConnectAuthOptions<T>,
): Promise<Connected<T>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const plans = dialPlans(addr, opts.clusterName);
  // Say so when TLS routing would have been tried had the cluster name been known.
  const routingSkipped = !plans.some((p) => p.kind === "tls-routing") &&
    dialPlans(addr, "cluster").some((p) => p.kind === "tls-routing");
  const notes = routingSkipped
    ? ["TLS routing through the proxy: not tried, the cluster name is unknown"]
    : [];
  const failed: DialAttempt[] = [];
  for (const plan of plans) {
    opts.signal?.throwIfAborted();
    const channel = authChannel(
      addr,
      plan,
      source,
      opts.env,
      opts.onGoaway ? { onGoaway: opts.onGoaway } : {},
    );
    const outcome = await attempt(channel, opts.probe, timeoutMs, opts.signal);
    if (outcome.ok) return { channel, result: outcome.result, failedAttempts: failed };
    opts.signal?.throwIfAborted();
    const { error, atTimeout } = outcome;
    if (!atTimeout && isServerAnswer(error) && channel.credentials.stats.handshakes > 0) {
      throw error;
    }
    failed.push({
      plan,
      description: channel.description,
      reason: atTimeout ? timeoutReason(atTimeout, timeoutMs) : failureReason(channel, error),
      cause: error,
    });
  }
  throw new DialError(addr, failed, notes);
}

type AttemptOutcome<T> =
  | { ok: true; result: T }
  /** `atTimeout`: the connector's record when the budget ran out, if it did. */
  | { ok: false; error: unknown; atTimeout: ConnectStats | undefined };

async function attempt<T>(
  channel: AuthChannel,
  probe: Probe<T>,
  timeoutMs: number,
  outer: AbortSignal | undefined,
): Promise<AttemptOutcome<T>> {
  const ctl = new AbortController();
  // Taken before the abort, which cuts the stalled connection and so rewrites the record.
  let atTimeout: ConnectStats | undefined;
  const timer = setTimeout(() => {
    atTimeout = channel.credentials.stats;
    ctl.abort(new Error(`No answer within ${timeoutMs} ms`));
  }, timeoutMs);
  const onOuterAbort = () => ctl.abort(outer?.reason);
  outer?.addEventListener("abort", onOuterAbort, { once: true });
  const abandoned = new Promise<never>((_, reject) => {
    ctl.signal.addEventListener("abort", () => reject(ctl.signal.reason), { once: true });
  });
  try {
    const result = await Promise.race([
      (async () => await probe(channel, ctl.signal))(),
      abandoned,
    ]);
    return { ok: true, result };
  } catch (error) {
    // Tell the probe to let go of its client, if it has not already.
    ctl.abort(error);
    return { ok: false, error, atTimeout };
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuterAbort);
  }
}

function isServerAnswer(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" && code !== grpc.status.OK && !STATUS_NOT_AN_ANSWER.has(code);
}

function timeoutReason(stats: ConnectStats, timeoutMs: number): string {
  const base = `no answer within ${timeoutMs} ms`;
  if (stats.phase !== undefined) return `${base} (stalled ${stats.phase})`;
  if (stats.lastError) return `${base} (last connection error: ${stats.lastError.message})`;
  return base;
}

/** Why an attempt failed, in words: our connector's diagnosis first, then grpc-js's. */
function failureReason(channel: AuthChannel, error: unknown): string {
  const stats = channel.credentials.stats;
  if (stats.lastError) return stats.lastError.message;
  const text = errorText(error);
  const peer = channel.proxy ? `HTTPS proxy ${channel.proxy.display}` : undefined;
  if (/ECONNREFUSED|connection refused/i.test(text)) {
    return peer ? `connection refused by ${peer}` : "connection refused";
  }
  if (/ENOTFOUND|EAI_AGAIN|Name resolution failed|failed to lookup/i.test(text)) {
    const host = channel.proxy ? channel.proxy.hostPort : channel.addr;
    return `cannot resolve the host of ${JSON.stringify(host)} (${text})`;
  }
  if (/ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/.test(text)) {
    return peer ? `${peer} unreachable (${text})` : `unreachable (${text})`;
  }
  return text;
}

function errorText(error: unknown): string {
  if (error === null || typeof error !== "object") return String(error);
  const { details, message } = error as { details?: unknown; message?: unknown };
  if (typeof details === "string" && details !== "") return details;
  if (typeof message === "string") return message;
  return String(error);
}

// ---------------------------------------------------------------------------
// The grpc-js hook.

type CreateSecureConnector = grpc.ChannelCredentials["_createSecureConnector"];
type SecureConnector = ReturnType<CreateSecureConnector>;
type SecureConnectResult = Awaited<ReturnType<SecureConnector["connect"]>>;

/** Counters and the last diagnosis of one credentials object's connections. */
export interface ConnectStats {
  /** Connectors grpc-js asked for (one per subchannel). */
  readonly connectors: number;
  /** Connections that completed TLS and got the server's first bytes. */
  readonly handshakes: number;
  /** ALPN protocol of the last good connection. */
  readonly alpnProtocol: string | undefined;
  /** Why the last connection failed; cleared by a good one. */
  readonly lastError: Error | undefined;
  /** What the newest unfinished connection is doing, e.g. "in the TLS handshake". */
  readonly phase: string | undefined;
  /** The last GOAWAY a server sent (the connection was ended there). */
  readonly lastGoaway: Goaway | undefined;
}

export interface TeleportCredentialsOptions {
  source: CredentialsSource;
  /** ALPN protocols to offer, in order (see {@linkcode DialPlan}). */
  alpn: readonly string[];
  /** Reach `target` ("host:port") by HTTP CONNECT through `proxy`; grpc-js then dials the proxy. */
  connectThrough?: { proxy: HttpProxy; target: string };
  /** Budget per new connection, ms. Default 10 s. */
  connectTimeoutMs?: number;
  /** Told when a server sends GOAWAY (e.g. `too_many_pings`, or a restart). */
  onGoaway?: (goaway: Goaway) => void;
}

/**
 * grpc-js channel credentials doing mutual TLS with Teleport: the client
 * certificate and key from `source` at connect time, only the identity's CAs
 * trusted, server name `teleport.cluster.local`, verification always on, the
 * plan's ALPN list offered and `h2` required back.
 */
export class TeleportChannelCredentials extends grpc.ChannelCredentials {
  readonly #opts: TeleportCredentialsOptions;
  #stats: { -readonly [K in keyof ConnectStats]: ConnectStats[K] } = {
    connectors: 0,
    handshakes: 0,
    alpnProtocol: undefined,
    lastError: undefined,
    phase: undefined,
    lastGoaway: undefined,
  };

  constructor(opts: TeleportCredentialsOptions) {
    super();
    if (opts.alpn.length === 0) throw new TypeError("At least one ALPN protocol is required");
    this.#opts = { ...opts, alpn: [...opts.alpn] };
  }

  /** A snapshot of what this object's connections did. */
  get stats(): ConnectStats {
    return { ...this.#stats };
  }

  override _isSecure(): boolean {
    return true;
  }

  /**
   * Identity: each object keeps its own connection record, so two channels
   * must never share subchannels just because their settings look alike.
   */
  override _equals(other: grpc.ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(
    _channelTarget: Parameters<CreateSecureConnector>[0],
    _options: Parameters<CreateSecureConnector>[1],
    callCredentials?: grpc.CallCredentials,
  ): SecureConnector {
    this.#stats.connectors++;
    const calls = callCredentials ?? grpc.CallCredentials.createEmpty();
    // Sockets still being set up, so destroy() can cut them when the channel closes.
    const life: ConnectorLife = { pending: new Set(), destroyed: false };
    return {
      connect: (socket: Socket) => this.#connect(socket, life),
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => calls,
      destroy: () => {
        life.destroyed = true;
        for (const s of life.pending) s.destroy();
        life.pending.clear();
      },
    };
  }

  async #connect(socket: Socket, life: ConnectorLife): Promise<SecureConnectResult> {
    const { pending } = life;
    const { alpn, connectThrough } = this.#opts;
    const timeoutMs = this.#opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const stats = this.#stats;
    let phase = "reading the identity's credentials";
    const setPhase = (p: string) => {
      phase = p;
      stats.phase = p;
    };
    setPhase(phase);
    pending.add(socket);
    let tlsSocket: tls.TLSSocket | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`connection not set up within ${timeoutMs} ms (stalled ${phase})`)),
        timeoutMs,
      );
    });
    try {
      const creds = readCredentials(this.#opts.source);
      if (connectThrough) {
        const { proxy, target } = connectThrough;
        setPhase(`asking HTTPS proxy ${proxy.display} for a tunnel`);
        await Promise.race([httpConnect(socket, target, proxy), timeout]);
      }
      setPhase("in the TLS handshake");
      const s = tls.connect({
        socket,
        key: creds.key,
        cert: creds.cert,
        ca: [...creds.cas],
        servername: TELEPORT_API_SERVER_NAME,
        ALPNProtocols: [...alpn],
        rejectUnauthorized: true,
        minVersion: "TLSv1.2",
      });
      tlsSocket = s;
      pending.add(s);
      // A permanent listener: an error between our hand-over and grpc-js
      // attaching its own must not become an uncaught exception.
      s.on("error", () => {});
      await Promise.race([tlsHandshake(s, alpn), timeout]);
      if (!s.authorized) throw describeTlsError(toError(s.authorizationError), alpn);
      if (s.alpnProtocol !== "h2") {
        throw new Error(
          `the server did not agree to HTTP/2 over ALPN (it chose ${
            JSON.stringify(s.alpnProtocol || "nothing")
          }; offered ${alpn.join(", ")})`,
        );
      }
      setPhase("waiting for the server's first HTTP/2 frame");
      await Promise.race([serverSpeaksFirst(s), timeout]);
      stats.handshakes++;
      stats.alpnProtocol = s.alpnProtocol;
      stats.lastError = undefined;
      stats.phase = undefined;
      const guard = new GoawayGuard(s, (goaway) => {
        stats.lastGoaway = goaway;
        this.#opts.onGoaway?.(goaway);
      });
      // grpc-js types this as net.Socket but uses it as a stream (see GoawayGuard).
      return { socket: guard as unknown as Socket, secure: true };
    } catch (e) {
      // Cut by destroy(): the channel was closed, the server is not to blame.
      const error = life.destroyed
        ? new Error("connection abandoned: the channel closed")
        : toError(e);
      if (!life.destroyed) stats.lastError = error;
      stats.phase = undefined;
      tlsSocket?.destroy();
      socket.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
      pending.delete(socket);
      if (tlsSocket) pending.delete(tlsSocket);
    }
  }
}

/** What a connector's connections share: sockets being set up, and whether grpc-js let go of it. */
interface ConnectorLife {
  readonly pending: Set<Socket>;
  destroyed: boolean;
}

function readCredentials(source: CredentialsSource): TlsCredentials {
  try {
    return source();
  } catch (e) {
    throw new Error(`cannot read the identity's credentials: ${toError(e).message}`, { cause: e });
  }
}

/** Resolves at `secureConnect`; rejects with a diagnosis on error or close. */
function tlsHandshake(s: tls.TLSSocket, alpn: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      s.off("secureConnect", onSecure);
      s.off("error", onError);
      s.off("close", onClose);
    };
    const onSecure = () => {
      done();
      resolve();
    };
    const onError = (e: unknown) => {
      done();
      reject(describeTlsError(toError(e), alpn));
    };
    const onClose = () => {
      done();
      reject(closedDuringHandshake(alpn));
    };
    s.once("secureConnect", onSecure);
    s.once("error", onError);
    s.once("close", onClose);
  });
}

/**
 * Waits for the server's first bytes (its HTTP/2 SETTINGS, which a gRPC
 * server sends at once) and puts them back for grpc-js. With TLS 1.3 the
 * client's handshake ends before the server has checked the client
 * certificate, so a refused certificate shows only as the connection closing
 * here; without this wait grpc-js would report a bare "Failed to connect".
 */
function serverSpeaksFirst(s: tls.TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      s.off("data", onData);
      s.off("error", onError);
      s.off("end", onClosed);
      s.off("close", onClosed);
    };
    const onData = (chunk: Buffer) => {
      done();
      s.pause();
      s.unshift(chunk);
      resolve();
    };
    const onError = (e: unknown) => {
      done();
      const error = toError(e);
      reject(
        isClientCertAlert(error.message)
          ? new Error(`the server refused the identity's client certificate (${error.message})`, {
            cause: error,
          })
          : new Error(`the connection failed right after the TLS handshake: ${error.message}`, {
            cause: error,
          }),
      );
    };
    const onClosed = () => {
      done();
      reject(
        new Error(
          "the server closed the connection right after the TLS handshake: it refused the " +
            "identity's client certificate (expired, or not issued by this cluster's Teleport CA)",
        ),
      );
    };
    s.on("data", onData);
    s.once("error", onError);
    s.once("end", onClosed);
    s.once("close", onClosed);
  });
}

/** Verification failures that mean "this chain does not lead to a trusted CA". */
const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_CHAIN_TOO_LONG",
]);

function isClientCertAlert(message: string): boolean {
  return /alert/i.test(message) &&
    /bad.?certificate|unknown.?ca|certificate.?required|certificate.?expired|certificate.?revoked|certificate.?unknown|unsupported.?certificate|access.?denied/i
      .test(message);
}

/** Turns a TLS error into words a Teleport admin can act on. */
function describeTlsError(error: Error, alpn: readonly string[]): Error {
  const code = (error as { code?: unknown }).code;
  const msg = error.message;
  const make = (text: string) => new Error(text, { cause: error });
  if (typeof code === "string" && UNTRUSTED_CERT_CODES.has(code)) {
    return make(`server certificate is not signed by the identity's Teleport CA (${msg})`);
  }
  switch (code) {
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
      // Deno reports expired and wrong-purpose certificates with this code too.
      return make(
        "server certificate does not verify against the identity's Teleport CA: not signed " +
          `by it, expired, or not a server certificate (${msg})`,
      );
    case "CERT_HAS_EXPIRED":
      return make(`server certificate has expired (${msg})`);
    case "CERT_NOT_YET_VALID":
      return make(`server certificate is not valid yet (${msg})`);
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return make(`server certificate is not valid for ${TELEPORT_API_SERVER_NAME} (${msg})`);
  }
  if (isClientCertAlert(msg)) {
    return make(`the server refused the identity's client certificate (${msg})`);
  }
  if (/no.?application.?protocol/i.test(msg)) {
    return make(`the server does not accept ALPN protocol ${alpn[0]}${routingHint(alpn)} (${msg})`);
  }
  if (code === "ECONNRESET" || /socket disconnected|socket hang up|closed/i.test(msg)) {
    return closedDuringHandshake(alpn, error);
  }
  return make(`TLS handshake failed: ${msg}`);
}

function closedDuringHandshake(alpn: readonly string[], cause?: Error): Error {
  return new Error(
    `the server closed the connection during the TLS handshake${routingHint(alpn)}`,
    cause ? { cause } : {},
  );
}

/** For the routing plan, what a proxy closing on us usually means. */
function routingHint(alpn: readonly string[]): string {
  return alpn[0] === "h2"
    ? ""
    : " (a Teleport proxy does this when TLS routing is off or the ALPN protocol names " +
      "another cluster)";
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

// ---------------------------------------------------------------------------
// GOAWAY guard (denoland/deno#36788).

/** HTTP/2 frame type GOAWAY. */
const FRAME_GOAWAY = 7;
/** HTTP/2 frame header length. */
const FRAME_HEADER_BYTES = 9;

/** A server's GOAWAY: its error code (0 = NO_ERROR) and debug text (e.g. `too_many_pings`). */
export interface Goaway {
  readonly errorCode: number;
  readonly lastStreamId: number;
  readonly debugData: string;
}

/**
 * Walks the frames of a server-to-client HTTP/2 byte stream (which starts at
 * a frame boundary: servers send no preface magic) and says how many bytes
 * to pass on. At a GOAWAY it stops: everything before the frame passes,
 * nothing from it on. Pure, for testing.
 */
export class Http2FrameScanner {
  /** Payload bytes of the current frame still to pass. */
  #skip = 0;
  /** A frame header split across chunks. */
  #partial: Uint8Array = new Uint8Array(0);
  /** GOAWAY frame being collected (header + payload so far), once seen. */
  #goaway: { frame: Uint8Array; need: number } | undefined;
  #done = false;

  /**
   * Feeds the next chunk. `pass` is what may go on to the HTTP/2 client;
   * `goaway` is set once the GOAWAY frame is complete, after which the stream
   * must be ended and nothing more is passed.
   */
  feed(chunk: Uint8Array): { pass: Uint8Array; goaway?: Goaway } {
    if (this.#done) return { pass: new Uint8Array(0) };
    if (this.#goaway) return this.#collectGoaway(chunk, new Uint8Array(0));
    const buf = this.#partial.length > 0 ? Buffer.concat([this.#partial, chunk]) : chunk;
    this.#partial = new Uint8Array(0);
    let at = 0;
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, buf.length - at);
        this.#skip -= n;
        at += n;
        if (this.#skip > 0) break;
      }
      if (buf.length - at < FRAME_HEADER_BYTES) {
        this.#partial = buf.slice(at);
        break;
      }
      const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      if (buf[at + 3] === FRAME_GOAWAY) {
        this.#goaway = { frame: new Uint8Array(0), need: FRAME_HEADER_BYTES + length };
        return this.#collectGoaway(buf.subarray(at), buf.subarray(0, at));
      }
      at += FRAME_HEADER_BYTES;
      this.#skip = length;
    }
    return { pass: buf.subarray(0, at) };
  }

  #collectGoaway(more: Uint8Array, pass: Uint8Array): { pass: Uint8Array; goaway?: Goaway } {
    const g = this.#goaway!;
    g.frame = Buffer.concat([g.frame, more.subarray(0, g.need - g.frame.length)]);
    if (g.frame.length < g.need) return { pass };
    this.#done = true;
    const p = g.frame.subarray(FRAME_HEADER_BYTES);
    const word = (i: number) =>
      p.length >= i + 4
        ? ((p[i]! << 24) | (p[i + 1]! << 16) | (p[i + 2]! << 8) | p[i + 3]!) >>> 0
        : 0;
    return {
      pass,
      goaway: {
        lastStreamId: word(0) & 0x7fffffff,
        errorCode: word(4),
        debugData: new TextDecoder().decode(p.subarray(8)),
      },
    };
  }
}

/**
 * Sits between the TLS socket and grpc-js's HTTP/2 session and ends the
 * connection where the server sent GOAWAY, without passing that frame on:
 * Deno 2.9's nghttp2 binding crashes the process on an incoming GOAWAY
 * (assertion in `find_stream_on_goaway_func`, or a segfault) before any
 * JavaScript runs, so it must never see one. grpc-js then sees a closed
 * connection and reconnects; calls still open on it fail with UNAVAILABLE
 * instead of finishing, and grpc-js's own `too_many_pings` back-off does not
 * happen (our keepalive already respects the server's minimum). Exposes the
 * few socket methods Deno's `node:http2` and grpc-js call on their socket.
 */
class GoawayGuard extends Duplex {
  readonly #inner: tls.TLSSocket;
  readonly #scanner = new Http2FrameScanner();

  constructor(inner: tls.TLSSocket, onGoaway: (goaway: Goaway) => void) {
    super({ allowHalfOpen: false });
    this.#inner = inner;
    inner.on("data", (chunk: Buffer) => {
      const { pass, goaway } = this.#scanner.feed(chunk);
      if (pass.length > 0 && !this.push(pass)) inner.pause();
      if (goaway) {
        onGoaway(goaway);
        this.push(null);
        inner.destroy();
      }
    });
    inner.on("end", () => this.push(null));
    inner.on("error", (e: Error) => this.destroy(e));
    inner.on("close", () => this.destroy());
  }

  override _read(): void {
    this.#inner.resume();
  }
  override _write(chunk: Buffer, _encoding: string, done: (e?: Error | null) => void): void {
    this.#inner.write(chunk, done);
  }
  override _final(done: (e?: Error | null) => void): void {
    this.#inner.end(() => done());
  }
  override _destroy(error: Error | null, done: (e?: Error | null) => void): void {
    this.#inner.destroy();
    done(error);
  }

  ref(): this {
    this.#inner.ref();
    return this;
  }
  unref(): this {
    this.#inner.unref();
    return this;
  }
  setNoDelay(noDelay?: boolean): this {
    this.#inner.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#inner.setKeepAlive(enable, initialDelay);
    return this;
  }
  setTimeout(ms: number, callback?: () => void): this {
    this.#inner.setTimeout(ms, callback);
    return this;
  }
  get encrypted(): boolean {
    return true;
  }
  get alpnProtocol(): string | false | null {
    return this.#inner.alpnProtocol;
  }
  get remoteAddress(): string | undefined {
    return this.#inner.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.#inner.remotePort;
  }
  get localAddress(): string | undefined {
    return this.#inner.localAddress;
  }
  get localPort(): number | undefined {
    return this.#inner.localPort;
  }
}

// ---------------------------------------------------------------------------
// HTTP CONNECT.

/**
 * Asks the proxy at the other end of `socket` for a tunnel to `target`;
 * resolves once it answered 2xx, with the socket paused and any bytes read
 * past the answer put back.
 */
function httpConnect(socket: Socket, target: string, proxy: HttpProxy): Promise<void> {
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
    const onError = (e: unknown) => fail(`failed: ${toError(e).message}`, e);
    const onClose = () => fail(`closed the connection before answering CONNECT`);
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    const auth = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : "";
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
  });
}

// ---------------------------------------------------------------------------
// Addresses and proxy environment (Go's golang.org/x/net/http/httpproxy).

/** Splits "host:port" or "[v6]:port"; throws unless the port is 1–65535. */
function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !(port >= 1 && port <= 65535)) {
    throw new Error(`Invalid Teleport address ${JSON.stringify(addr)}: expected host:port`);
  }
  return { host, port };
}

function firstNonEmpty(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

function parseProxyUrl(raw: string): HttpProxy {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  // Go retries "host:port" and other scheme-less values as http://.
  if (!url || url.host === "") {
    try {
      url = new URL(`http://${raw}`);
    } catch (e) {
      throw new Error(`Invalid HTTPS_PROXY ${JSON.stringify(raw)}: not a URL`, { cause: e });
    }
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
