/**
 * How the plugin reaches the Auth Service gRPC API: mutual TLS with the
 * identity's certificates, directly (ALPN `h2`), through a Proxy with TLS
 * routing (Teleport's auth ALPN protocol first), or through the Proxy's
 * connection upgrade when an L7 load balancer in front of it terminates
 * TLS; optionally tunnelled through an HTTP CONNECT proxy named by
 * `HTTPS_PROXY`/`NO_PROXY`. The routes are tried at once and the first that
 * answers wins. Knows nothing about Teleport's proto (the caller's probe
 * does the talking).
 *
 * The one public module of the dialer. Here: building a channel for one plan
 * and racing the routes. Beside it, private parts:
 * - `_dial_plan.ts`: which plans there are for an address;
 * - `_dial_route.ts`: connecting one route (CONNECT, upgrade, mutual TLS, ALPN);
 * - `_conn_upgrade.ts`: the Proxy's connection upgrade, and whether it is needed;
 * - `_grpc_connector.ts`: the hook through which grpc-js gets our socket;
 * - `_goaway_guard_deno_36788.ts`: the workaround for denoland/deno#36788;
 * - `_https_proxy.ts`: `HTTPS_PROXY`/`NO_PROXY` and HTTP CONNECT;
 * - `_address.ts`: parsing "host:port".
 */

import * as grpc from "@grpc/grpc-js";
import type * as tls from "node:tls";
import { splitHostPort } from "./_address.ts";
import {
  connUpgradeMode,
  connUpgradeOverride,
  detectConnUpgrade,
  systemRoots,
} from "./_conn_upgrade.ts";
import {
  connUpgradePlan,
  describePlan,
  type DialPlan,
  dialPlans,
  mayNeedConnUpgrade,
} from "./_dial_plan.ts";
import { connectRoute, type CredentialsSource } from "./_dial_route.ts";
import type { Goaway } from "./_goaway_guard_deno_36788.ts";
import {
  type ConnectStats,
  emptyConnectStats,
  TeleportChannelCredentials,
} from "./_grpc_connector.ts";
import { dialTcp, type Env, type HttpProxy, httpsProxyFor } from "./_https_proxy.ts";

export {
  CONN_UPGRADE_ENV,
  CONN_UPGRADE_MODE_ENV,
  CONN_UPGRADE_PATH,
  connUpgradeOverride,
  systemRoots,
} from "./_conn_upgrade.ts";
export {
  authAlpnProtocol,
  type ConnUpgradeMode,
  connUpgradePlan,
  describePlan,
  type DialPlan,
  dialPlans,
  DIRECT_PLAN,
  TELEPORT_API_SERVER_NAME,
  tlsRoutingPlan,
} from "./_dial_plan.ts";
export type { CredentialsSource, TlsCredentials } from "./_dial_route.ts";
export { type Goaway, Http2FrameScanner } from "./_goaway_guard_deno_36788.ts";
export {
  type ConnectStats,
  TeleportChannelCredentials,
  type TeleportCredentialsOptions,
} from "./_grpc_connector.ts";
export { type Env, type HttpProxy, httpsProxyFor } from "./_https_proxy.ts";

/** Default budget for one route's attempt in {@linkcode connectAuth} (SPEC: Ping within 10 s). */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
/** Most of a route's budget the connection-upgrade test may take (Teleport's: 5 s). */
const DETECT_BUDGET_MS = 5_000;
/**
 * How long the connection-upgrade test waits for the other routes before it
 * starts anyway; it starts at once when they have all failed. Its
 * `/webapi/find` dial verifies against every system root (~25 ms of CPU),
 * which a route that is up in the meantime makes unnecessary.
 */
const DETECT_HEAD_START_MS = 500;
/** Keepalive ping period, as Teleport's client (`defaults.ServerKeepAliveTTL()`, 1 minute). */
const KEEPALIVE_TIME_MS = 60_000;
/** No ping answer within this: the connection is dead (Teleport's: 1 minute × `KeepAliveCountMax` 3). */
const KEEPALIVE_TIMEOUT_MS = 180_000;
/** Most grpc-js waits between its own reconnection attempts (see {@linkcode CHANNEL_OPTIONS}). */
const MAX_RECONNECT_BACKOFF_MS = 1_000;
/** Why a route was abandoned, in its connections' errors. */
const LOST_RACE = "another route connected first";

/** gRPC status codes that mean "no usable answer" rather than "the server said no". */
const STATUS_NOT_AN_ANSWER: ReadonlySet<number> = new Set([
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNAVAILABLE,
]);

/**
 * Channel options for every Auth client.
 * - keepalive as Teleport's Go client sets it (`Config.CheckAndSetDefaults`
 *   in `api/client/client.go`): a ping every minute, also without open calls
 *   (`PermitWithoutStream: true`, which Teleport's servers accept), and the
 *   connection given up after 3 minutes without an answer. More often than
 *   every 60 s a server answers with GOAWAY too_many_pings.
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
  "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
  "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.enable_http_proxy": 0,
  "grpc.use_local_subchannel_pool": 1,
  "grpc.max_reconnect_backoff_ms": MAX_RECONNECT_BACKOFF_MS,
});

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
 * Builds the channel for `plan` to `addr`. Throws when `addr` is not
 * "host:port" or the proxy environment is unusable (configuration errors,
 * not network ones).
 */
export function authChannel(
  addr: string,
  plan: DialPlan,
  source: CredentialsSource,
  env: Env,
  hooks: {
    onGoaway?: (goaway: Goaway) => void;
    /** Roots for the load balancer's certificate (conn-upgrade plan); default {@linkcode systemRoots}. */
    upgradeCas?: readonly string[];
    /** A connection the dial race already set up, used for the channel's first one. */
    adopt?: tls.TLSSocket;
  } = {},
): AuthChannel {
  // Refuse a malformed address now: without a proxy nothing else here parses it.
  splitHostPort(addr);
  const proxy = httpsProxyFor(addr, env);
  const credentials = new TeleportChannelCredentials({
    source,
    alpn: plan.alpn,
    ...(proxy ? { connectThrough: { proxy, target: addr } } : {}),
    ...(plan.kind === "conn-upgrade"
      ? { upgrade: { addr, mode: plan.mode, cas: hooks.upgradeCas ?? systemRoots() } }
      : {}),
    ...(hooks.onGoaway ? { onGoaway: hooks.onGoaway } : {}),
    ...(hooks.adopt ? { adopt: hooks.adopt } : {}),
  });
  const options: grpc.ChannelOptions = {
    ...CHANNEL_OPTIONS,
    // Requests name Teleport, not the proxy grpc-js happens to be connected to.
    ...(proxy ? { "grpc.default_authority": addr } : {}),
  };
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
  /** Cluster name, for the TLS routing plans; without it only direct is tried. */
  clusterName?: string | undefined;
  /**
   * Process environment: `HTTPS_PROXY`/`NO_PROXY`,
   * `TELEPORT_TLS_ROUTING_CONN_UPGRADE` and `TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE`.
   */
  env: Env;
  /** Budget per route, ms. Default {@linkcode DEFAULT_ATTEMPT_TIMEOUT_MS}. */
  timeoutMs?: number;
  probe: Probe<T>;
  /**
   * CA certificates (PEM) trusted for the TLS to an L7 load balancer in
   * front of the Proxy (connection upgrade), besides the system roots.
   */
  proxyCas?: readonly string[];
  /** The system roots; default {@linkcode systemRoots}. For tests. */
  systemCas?: () => readonly string[];
  signal?: AbortSignal;
  /** Told when a server sends GOAWAY on one of the channels made here. */
  onGoaway?: (goaway: Goaway) => void;
}

export interface Connected<T> {
  /** The channel whose probe answered: reuse it for the real client. */
  readonly channel: AuthChannel;
  /** What the probe returned. */
  readonly result: T;
  /** The routes that had failed when this one connected (the others were abandoned). */
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

/** Every plan for an address failed; `attempts` says how each did, in plan order. */
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

/** One route to try: a plan, and whether the connection-upgrade test must first say it is needed. */
interface Route {
  readonly plan: DialPlan;
  readonly detect: boolean;
}

type RouteOutcome<T> =
  | { readonly kind: "ok"; readonly channel: AuthChannel; readonly result: T }
  | { readonly kind: "failed"; readonly attempt: DialAttempt }
  /** Teleport was reached and said no: the answer for every route. */
  | { readonly kind: "answer"; readonly error: unknown }
  /** Not tried (the upgrade is not needed); `note` when the operator should hear why. */
  | { readonly kind: "skipped"; readonly note: string | undefined }
  /** Abandoned because the race was decided elsewhere. */
  | { readonly kind: "stopped" };

/**
 * Tries every route for `addr` at once, as Teleport's Go client does: each
 * sets up its own connection (TCP, CONNECT, upgrade, mutual TLS, the
 * server's first HTTP/2 bytes) outside grpc-js; the first one up wins and is
 * handed to a grpc-js channel, the others are cut (they never send a call),
 * and the winner's probe's answer is returned. The routes:
 * {@linkcode dialPlans} (direct, TLS routing) and, on any port but Auth's
 * with the cluster name known, TLS routing inside the Proxy's connection
 * upgrade, when `TELEPORT_TLS_ROUTING_CONN_UPGRADE` says so or `/webapi/find`
 * and a test dial say it is needed (`_conn_upgrade.ts`). Each route has its
 * own budget, so none waits for another's timeout.
 *
 * A probe failing with a gRPC status other than UNAVAILABLE,
 * DEADLINE_EXCEEDED or CANCELLED after a TLS handshake succeeded means
 * Teleport was reached and said no (e.g. PERMISSION_DENIED): that error is
 * thrown as is and the other routes are abandoned. When every route fails,
 * throws one {@linkcode DialError} listing each attempt, in plan order, and
 * why it failed.
 */
export function connectAuth<T>(
  addr: string,
  source: CredentialsSource,
  opts: ConnectAuthOptions<T>,
): Promise<Connected<T>> {
  try {
    opts.signal?.throwIfAborted();
    // A proxy setting that cannot be used is refused here, before any route runs (each route
    // reads it again, inside its own error handling).
    httpsProxyFor(addr, opts.env);
  } catch (e) {
    return Promise.reject(e);
  }
  const plans = dialPlans(addr, opts.clusterName);
  // Say so when TLS routing would have been tried had the cluster name been known.
  const routingSkipped = !plans.some((p) => p.kind === "tls-routing") &&
    dialPlans(addr, "cluster").some((p) => p.kind === "tls-routing");
  const notes = routingSkipped
    ? ["TLS routing through the proxy: not tried, the cluster name is unknown"]
    : [];
  const routes: Route[] = plans.map((plan) => ({ plan, detect: false }));
  const forced = connUpgradeOverride(addr, opts.env);
  if (opts.clusterName && mayNeedConnUpgrade(addr) && forced !== false) {
    routes.push({
      plan: connUpgradePlan(opts.clusterName, connUpgradeMode(opts.env)),
      detect: forced === undefined,
    });
  }
  const upgradeCas = [...(opts.systemCas ?? systemRoots)(), ...(opts.proxyCas ?? [])];
  const outcomes: (RouteOutcome<T> | undefined)[] = [];
  const lose = routes.map(() => new AbortController());
  let plainLeft = routes.filter((r) => !r.detect).length;
  let plainDone!: () => void;
  const plainRoutesDone = new Promise<void>((resolve) => (plainDone = resolve));
  if (plainLeft === 0) plainDone();
  const ctx: RouteContext<T> = {
    addr,
    source,
    opts,
    timeoutMs: opts.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
    upgradeCas,
    plainRoutesDone,
  };
  return new Promise<Connected<T>>((resolve, reject) => {
    /** The route whose connection came up first: the race is its from then on. */
    let winner: number | undefined;
    let settled = false;
    const failed = () => outcomes.flatMap((o) => o?.kind === "failed" ? [o.attempt] : []);
    const dialError = () => {
      const skipNotes = outcomes.flatMap((o) =>
        o?.kind === "skipped" && o.note ? [`${describeUpgrade(routes)}: not tried, ${o.note}`] : []
      );
      return new DialError(addr, failed(), [...notes, ...skipNotes]);
    };
    const abandon = (keep: number | undefined, reason: unknown) => {
      lose.forEach((ctl, i) => {
        if (i !== keep) ctl.abort(reason);
      });
    };
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener("abort", onOuterAbort);
      settle();
    };
    // As in Teleport's client (a blocking gRPC dial per route), the first
    // route whose connection is up wins; the others are cut, having sent no call.
    const claim = (i: number): boolean => {
      if (winner !== undefined || settled) return winner === i;
      winner = i;
      abandon(i, new Error(LOST_RACE));
      return true;
    };
    const onOuterAbort = () =>
      finish(() => {
        abandon(undefined, opts.signal?.reason);
        reject(opts.signal?.reason);
      });
    opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
    routes.forEach((route, i) => {
      runRoute(route, ctx, lose[i]!.signal, () => claim(i)).then((outcome) => {
        outcomes[i] = outcome;
        if (!route.detect && --plainLeft === 0) plainDone();
        if (settled || (winner !== undefined && winner !== i)) return;
        if (outcome.kind === "ok" && claim(i)) {
          finish(() =>
            resolve({ channel: outcome.channel, result: outcome.result, failedAttempts: failed() })
          );
        } else if (outcome.kind === "answer") {
          finish(() => {
            abandon(undefined, outcome.error);
            reject(outcome.error);
          });
        } else if (winner === i || outcomes.filter(Boolean).length === routes.length) {
          // The winner failed after its connection came up, or every route is done.
          finish(() => {
            abandon(undefined, new Error(LOST_RACE));
            reject(dialError());
          });
        }
      });
    });
  });
}

interface RouteContext<T> {
  readonly addr: string;
  readonly source: CredentialsSource;
  readonly opts: ConnectAuthOptions<T>;
  readonly timeoutMs: number;
  readonly upgradeCas: readonly string[];
  /** Settles when every route without the upgrade test has an outcome. */
  readonly plainRoutesDone: Promise<void>;
}

/** The upgrade route in words, for notes about it. */
function describeUpgrade(routes: readonly Route[]): string {
  const plan = routes.find((r) => r.plan.kind === "conn-upgrade")?.plan;
  return plan ? describePlan(plan) : "the connection upgrade";
}

/**
 * One route within its own budget: the upgrade test when it needs one, the
 * route's connection (TCP, CONNECT, upgrade, mutual TLS), then, if `claim`
 * says it is the first up, a channel on that connection and the probe.
 * Never rejects.
 */
async function runRoute<T>(
  route: Route,
  ctx: RouteContext<T>,
  lost: AbortSignal,
  claim: () => boolean,
): Promise<RouteOutcome<T>> {
  const { addr, opts, timeoutMs } = ctx;
  if (lost.aborted) return { kind: "stopped" };
  const ctl = new AbortController();
  const proxy = httpsProxyFor(addr, opts.env);
  let channel: AuthChannel | undefined;
  /** What the route is doing before it has a channel, for a timeout's reason. */
  let phase: string | undefined;
  // Taken before the abort, which cuts the stalled connection and so rewrites the record.
  let atTimeout: ConnectStats | undefined;
  const timer = setTimeout(() => {
    atTimeout = channel?.credentials.stats ?? { ...NO_STATS, phase };
    ctl.abort(new Error(`No answer within ${timeoutMs} ms`));
  }, timeoutMs);
  const onLost = () => ctl.abort(lost.reason);
  lost.addEventListener("abort", onLost, { once: true });
  // What the route is setting up, cut when it is abandoned.
  const pending = new Set<{ destroy(): void }>();
  const cut = () => {
    for (const p of pending) p.destroy();
    pending.clear();
  };
  ctl.signal.addEventListener("abort", cut, { once: true });
  const abandoned = new Promise<never>((_, reject) => {
    ctl.signal.addEventListener("abort", () => reject(ctl.signal.reason), { once: true });
  });
  abandoned.catch(() => {});
  const fail = (error: unknown): RouteOutcome<T> => {
    if (lost.aborted) return { kind: "stopped" };
    let reason: string;
    if (atTimeout) reason = timeoutReason(atTimeout, timeoutMs);
    else if (channel) reason = failureReason(channel, error);
    else reason = connectFailureReason(error, addr, proxy);
    return {
      kind: "failed",
      attempt: {
        plan: route.plan,
        description: describePlan(route.plan) +
          (proxy ? ` via HTTPS proxy ${proxy.display}` : ""),
        reason,
        cause: error,
      },
    };
  };
  try {
    let ch: AuthChannel;
    try {
      if (route.detect) {
        phase = "waiting for the other routes";
        let headStart: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          ctx.plainRoutesDone,
          new Promise((resolve) => (headStart = setTimeout(resolve, DETECT_HEAD_START_MS))),
          abandoned,
        ]).finally(() => clearTimeout(headStart));
        phase = "in the connection-upgrade test";
        const decision = await detectConnUpgrade(addr, {
          env: opts.env,
          cas: ctx.upgradeCas,
          timeoutMs: Math.min(DETECT_BUDGET_MS, timeoutMs),
          signal: ctl.signal,
        });
        if (!decision.required) return { kind: "skipped", note: decision.note };
      }
      phase = proxy ? `asking HTTPS proxy ${proxy.display} for a tunnel` : "connecting";
      const raw = await Promise.race([
        dialTcp(addr, opts.env, ctl.signal).then((socket) => {
          // A socket that arrives after the route was abandoned is closed at once.
          if (ctl.signal.aborted) socket.destroy();
          else pending.add(socket);
          return socket;
        }),
        abandoned,
      ]);
      const { plan } = route;
      const connection = await Promise.race([
        connectRoute(raw, {
          source: ctx.source,
          alpn: plan.alpn,
          upgrade: plan.kind === "conn-upgrade"
            ? { addr, mode: plan.mode, cas: ctx.upgradeCas }
            : undefined,
          // The route's own budget (above) ends it first, with the better words.
          timeoutMs: timeoutMs * 2,
          onPhase: (p) => {
            phase = p;
          },
          pending,
        }),
        abandoned,
      ]);
      pending.add(connection);
      if (!claim()) return { kind: "stopped" };
      pending.clear();
      ch = authChannel(addr, plan, ctx.source, opts.env, {
        ...(opts.onGoaway ? { onGoaway: opts.onGoaway } : {}),
        upgradeCas: ctx.upgradeCas,
        adopt: connection,
      });
      channel = ch;
    } catch (error) {
      return fail(error);
    }
    const running = (async () => await opts.probe(ch, ctl.signal))();
    try {
      return { kind: "ok", channel: ch, result: await Promise.race([running, abandoned]) };
    } catch (error) {
      // Tell the probe to let go of its client, if it has not already.
      ctl.abort(error);
      running.catch(() => {});
      if (
        !lost.aborted && !atTimeout && isServerAnswer(error) &&
        ch.credentials.stats.handshakes > 0
      ) {
        return { kind: "answer", error };
      }
      return fail(error);
    }
  } finally {
    clearTimeout(timer);
    lost.removeEventListener("abort", onLost);
    ctl.signal.removeEventListener("abort", cut);
    cut();
  }
}

/** Why setting up a route's connection failed, in words (before grpc-js had any part in it). */
function connectFailureReason(error: unknown, addr: string, proxy: HttpProxy | undefined): string {
  const text = errorText(error);
  const code = (error as { code?: unknown } | null)?.code;
  const peer = proxy ? `HTTPS proxy ${proxy.display}` : undefined;
  if (code === "ECONNREFUSED") return peer ? `connection refused by ${peer}` : "connection refused";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") {
    return `cannot resolve the host of ${JSON.stringify(proxy ? proxy.hostPort : addr)} (${text})`;
  }
  if (code === "ETIMEDOUT" || code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return peer ? `${peer} unreachable (${text})` : `unreachable (${text})`;
  }
  return text;
}

/** A connection record for a route that has no channel yet. */
const NO_STATS: ConnectStats = Object.freeze(emptyConnectStats());

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
