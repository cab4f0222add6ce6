/**
 * How the plugin reaches the Auth Service gRPC API: mutual TLS with the
 * identity's certificates, directly (ALPN `h2`) or through a Proxy with TLS
 * routing (Teleport's auth ALPN protocol first), optionally tunnelled through
 * an HTTP CONNECT proxy named by `HTTPS_PROXY`/`NO_PROXY`. Knows nothing about
 * Teleport's proto (the caller's probe does the talking).
 *
 * The one public module of the dialer. Here: building a channel for one plan
 * and trying the plans in turn. Beside it, private parts:
 * - `_dial_plan.ts`: which plans to try for an address, in which order;
 * - `_dial_route.ts`: connecting one route (CONNECT, mutual TLS, ALPN);
 * - `_grpc_connector.ts`: the hook through which grpc-js gets our socket;
 * - `_goaway_guard_deno_36788.ts`: the workaround for denoland/deno#36788;
 * - `_https_proxy.ts`: `HTTPS_PROXY`/`NO_PROXY` and HTTP CONNECT;
 * - `_address.ts`: parsing "host:port".
 */

import * as grpc from "@grpc/grpc-js";
import { splitHostPort } from "./_address.ts";
import { describePlan, type DialPlan, dialPlans } from "./_dial_plan.ts";
import type { CredentialsSource } from "./_dial_route.ts";
import type { Goaway } from "./_goaway_guard_deno_36788.ts";
import { type ConnectStats, TeleportChannelCredentials } from "./_grpc_connector.ts";
import { type Env, type HttpProxy, httpsProxyFor } from "./_https_proxy.ts";

export {
  authAlpnProtocol,
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

/** Default budget for one plan's attempt in {@linkcode connectAuth} (SPEC: Ping within 10 s). */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;

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
  hooks: { onGoaway?: (goaway: Goaway) => void } = {},
): AuthChannel {
  // Refuse a malformed address now: without a proxy nothing else here parses it.
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
