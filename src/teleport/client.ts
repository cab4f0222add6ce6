/**
 * The Teleport API client over gRPC: the only code that builds requests and
 * reads responses as proto messages. Callers get domain types (`types.ts`).
 * One channel per client; the channel's credentials read the newest
 * identity on every new connection.
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "@logtape/logtape";
import {
  type PbEvent,
  type PbGetUserResponse,
  type PbListAccessMonitoringRulesResponse,
  type PbListAccessRequestsResponse,
  type PbPingResponse,
  type PbPluginDataSeq,
  type PbUser,
  teleportProto,
} from "./proto.ts";
import {
  KIND_ACCESS_REQUEST,
  toAccessMonitoringRule,
  toAccessRequest,
  toPingInfo,
  toPluginData,
  toUser,
  toWatchEvent,
} from "./convert.ts";
import {
  type AuthChannel,
  connectAuth,
  type Connected,
  type CredentialsSource,
  type Env,
} from "./dial.ts";
import {
  CompareFailedError,
  fromGrpcError,
  isTeleportError,
  StreamMovedError,
  TeleportError,
} from "./errors.ts";
import {
  type AccessMonitoringRule,
  type AccessRequest,
  type PingInfo,
  type PluginData,
  type TeleportClient,
  type TeleportUser,
  type WatchEvent,
} from "./types.ts";

/** The plugin name our data is stored under (the Go plugin's). */
export const PLUGIN_NAME = "email";
/** Deadline of one unary call. */
export const CALL_TIMEOUT_MS = 10_000;
/** Page size when listing access requests and rules. */
export const PAGE_SIZE = 500;
/**
 * Most pages one listing reads (5 M items at full pages): a server whose
 * page keys never end is stopped there instead of filling the memory.
 */
export const MAX_PAGES = 10_000;
/** Oldest Teleport this plugin talks to. */
export const MIN_SERVER_VERSION = "6.1.0";

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

type ServerStream<Req> = (request: Req, options?: grpc.CallOptions) => grpc.ClientReadableStream<
  unknown
>;

/** Major.minor.patch comparison; anything unreadable counts as new enough. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parse = (v: string) => /^v?(\d+)\.(\d+)\.(\d+)/.exec(v)?.slice(1).map(Number);
  const a = parse(version);
  const b = parse(minimum)!;
  if (!a) return true;
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/** After a reconnect, calls still running on the old connection get this long to finish. */
export const OLD_CONNECTION_GRACE_MS = 30_000;

export class GrpcTeleportClient implements TeleportClient {
  readonly channel: AuthChannel;
  #auth!: grpc.Client;
  #amr!: grpc.Client;
  #users!: grpc.Client;
  /** Set once the server answered that it has no `UsersService` (older Teleport). */
  #legacyGetUser = false;
  readonly #watches = new Set<grpc.ClientReadableStream<unknown>>();
  /** Watch calls `reconnect` cancelled: their end is a move, not a loss. */
  readonly #moved = new WeakSet<grpc.ClientReadableStream<unknown>>();
  /** Connections replaced by `reconnect()`, closed after a grace period. */
  readonly #retired = new Map<ReturnType<typeof setTimeout>, grpc.Client[]>();

  constructor(channel: AuthChannel) {
    this.channel = channel;
    this.#open();
  }

  /** Opens a fresh connection (its TLS handshake uses the newest credentials). */
  #open() {
    const proto = teleportProto();
    const { target, credentials, options } = this.channel;
    this.#auth = new proto.AuthService(target, credentials, options);
    this.#amr = new proto.AccessMonitoringRulesService(target, credentials, {
      ...options,
      channelOverride: this.#auth.getChannel(),
    });
    this.#users = new proto.UsersService(target, credentials, {
      ...options,
      channelOverride: this.#auth.getChannel(),
    });
  }

  /**
   * Moves to a new connection: new calls use it at once, open watch streams
   * are cancelled (the watcher reopens them on the new connection), other
   * calls on the old one get a grace period.
   */
  reconnect(): void {
    const oldAuth = this.#auth;
    const oldAmr = this.#amr;
    const oldUsers = this.#users;
    this.#open();
    for (const call of this.#watches) {
      this.#moved.add(call);
      call.cancel();
    }
    const timer = setTimeout(() => {
      this.#retired.delete(timer);
      oldUsers.close();
      oldAmr.close();
      oldAuth.close();
    }, OLD_CONNECTION_GRACE_MS);
    this.#retired.set(timer, [oldUsers, oldAmr, oldAuth]);
  }

  #unary<Req, Res>(client: grpc.Client, method: string, request: Req, signal?: AbortSignal) {
    const fn = (client as unknown as Record<string, Unary<Req, Res>>)[method]!.bind(client);
    return new Promise<Res>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const call = fn(
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + CALL_TIMEOUT_MS },
        (error, response) => {
          signal?.removeEventListener("abort", onAbort);
          if (error) reject(signal?.aborted ? signal.reason : fromGrpcError(error, method));
          else resolve(response as Res);
        },
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async ping(signal?: AbortSignal): Promise<PingInfo> {
    return toPingInfo(await this.#unary<object, PbPingResponse>(this.#auth, "Ping", {}, signal));
  }

  async *watch(kinds: readonly string[], signal?: AbortSignal): AsyncIterable<WatchEvent> {
    const fn = (this.#auth as unknown as Record<string, ServerStream<object>>)["WatchEvents"]!;
    const call = fn.call(this.#auth, {
      Kinds: kinds.map((Kind) => ({ Kind })),
      AllowPartialSuccess: true,
    });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#watches.add(call);
    try {
      for await (const message of call) {
        const event = toWatchEvent(message as PbEvent);
        if (event) yield event;
      }
      if (this.#moved.has(call)) throw new StreamMovedError("WatchEvents");
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (this.#moved.has(call)) throw new StreamMovedError("WatchEvents");
      throw fromGrpcError(error, "WatchEvents");
    } finally {
      this.#watches.delete(call);
      signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  async listAccessRequests(
    filter: { id?: string } = {},
    signal?: AbortSignal,
  ): Promise<AccessRequest[]> {
    const Filter = filter.id ? { ID: filter.id } : {};
    try {
      return await listPages("ListAccessRequests", async (StartKey, Limit) => {
        const page = await this.#unary<object, PbListAccessRequestsResponse>(
          this.#auth,
          "ListAccessRequests",
          { Filter, Limit, StartKey },
          signal,
        );
        return { items: (page.AccessRequests ?? []).map(toAccessRequest), next: page.NextKey };
      });
    } catch (error) {
      if (!isTeleportError(error, "unsupported")) throw error;
    }
    // Servers before ListAccessRequests: the older streaming call.
    const fn = (this.#auth as unknown as Record<string, ServerStream<object>>)[
      "GetAccessRequestsV2"
    ]!;
    const call = fn.call(this.#auth, Filter, { deadline: Date.now() + CALL_TIMEOUT_MS });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const all: AccessRequest[] = [];
      for await (const pb of call) all.push(toAccessRequest(pb as never));
      return all;
    } catch (error) {
      throw signal?.aborted ? signal.reason : fromGrpcError(error, "GetAccessRequestsV2");
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  async getPluginData(requestId: string, signal?: AbortSignal): Promise<PluginData | undefined> {
    const seq = await this.#unary<object, PbPluginDataSeq>(this.#auth, "GetPluginData", {
      Kind: KIND_ACCESS_REQUEST,
      Resource: requestId,
      Plugin: PLUGIN_NAME,
    }, signal);
    return toPluginData(seq, PLUGIN_NAME, requestId);
  }

  async listPluginData(signal?: AbortSignal): Promise<{ requestId: string; data: PluginData }[]> {
    const seq = await this.#unary<object, PbPluginDataSeq>(this.#auth, "GetPluginData", {
      Kind: KIND_ACCESS_REQUEST,
      Plugin: PLUGIN_NAME,
    }, signal);
    const out: { requestId: string; data: PluginData }[] = [];
    for (const item of seq.PluginData ?? []) {
      const requestId = item.Metadata?.Name ?? "";
      const data = toPluginData({ PluginData: [item] }, PLUGIN_NAME);
      if (requestId !== "" && data !== undefined) out.push({ requestId, data });
    }
    return out;
  }

  async updatePluginData(
    requestId: string,
    set: PluginData,
    expect: PluginData,
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      await this.#unary(this.#auth, "UpdatePluginData", {
        Kind: KIND_ACCESS_REQUEST,
        Resource: requestId,
        Plugin: PLUGIN_NAME,
        Set: set,
        Expect: expect,
      }, signal);
    } catch (error) {
      if (error instanceof CompareFailedError) {
        throw new CompareFailedError(
          `Plugin data of request "${requestId}" changed: ${error.details}`,
          { cause: error, details: error.details },
        );
      }
      throw error;
    }
  }

  listAccessMonitoringRules(signal?: AbortSignal): Promise<AccessMonitoringRule[]> {
    return listPages("ListAccessMonitoringRulesWithFilter", async (page_token, page_size) => {
      const page = await this.#unary<object, PbListAccessMonitoringRulesResponse>(
        this.#amr,
        "ListAccessMonitoringRulesWithFilter",
        {
          page_size,
          page_token,
          subjects: [KIND_ACCESS_REQUEST],
          notification_name: PLUGIN_NAME,
        },
        signal,
      );
      return { items: (page.rules ?? []).map(toAccessMonitoringRule), next: page.next_page_token };
    });
  }

  async getUser(name: string, signal?: AbortSignal): Promise<TeleportUser> {
    if (!this.#legacyGetUser) {
      try {
        const res = await this.#unary<object, PbGetUserResponse>(
          this.#users,
          "GetUser",
          { name, with_secrets: false },
          signal,
        );
        return toUser(res.user, name);
      } catch (error) {
        if (!isTeleportError(error, "unsupported")) throw error;
        // As Teleport's client does: servers before teleport.users.v1 have the legacy call.
        this.#legacyGetUser = true;
      }
    }
    const user = await this.#unary<object, PbUser>(
      this.#auth,
      "GetUser",
      { Name: name, WithSecrets: false },
      signal,
    );
    return toUser(user, name);
  }

  close(): void {
    for (const [timer, clients] of this.#retired) {
      clearTimeout(timer);
      for (const client of clients) client.close();
    }
    this.#retired.clear();
    for (const call of this.#watches) call.cancel();
    this.#users.close();
    this.#amr.close();
    this.#auth.close();
  }
}

/**
 * The dialer's probe of a route: a client on the channel and its Ping, the
 * client closed when the Ping fails.
 */
export async function pingProbe(
  channel: AuthChannel,
  signal: AbortSignal,
): Promise<{ client: GrpcTeleportClient; ping: PingInfo }> {
  const client = new GrpcTeleportClient(channel);
  try {
    return { client, ping: await client.ping(signal) };
  } catch (error) {
    client.close();
    // The dialer tells a route that answered from one that did not by the
    // raw gRPC status, so it gets the status, not our wrapping.
    throw isTeleportError(error) && error.cause !== undefined ? error.cause : error;
  }
}

export interface ConnectTeleportOptions {
  readonly addr: string;
  readonly credentials: CredentialsSource;
  /** From the identity (its certificate issuer's O); enables TLS routing through a Proxy. */
  readonly clusterName?: string | undefined;
  readonly env: Env;
  readonly log: Logger;
  /** CAs (PEM) trusted for an L7 load balancer in front of the Proxy, besides the system roots. */
  readonly proxyCas?: readonly string[];
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Reaches the Auth Service (trying the dial plans for `addr` at once, the first up wins), pings
 * it and refuses servers older than {@linkcode MIN_SERVER_VERSION}.
 */
export async function connectTeleport(
  opts: ConnectTeleportOptions,
): Promise<{ client: GrpcTeleportClient; ping: PingInfo }> {
  const connected: Connected<{ client: GrpcTeleportClient; ping: PingInfo }> = await connectAuth(
    opts.addr,
    opts.credentials,
    {
      clusterName: opts.clusterName,
      env: opts.env,
      ...(opts.proxyCas ? { proxyCas: opts.proxyCas } : {}),
      ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      probe: pingProbe,
      // A Teleport restarting, upgrading or shedding connections says so; the guard then closes
      // the connection and grpc-js makes a new one for the next calls (and the watch's reopening).
      // Code 0 is a graceful goodbye; another (ENHANCE_YOUR_CALM for too many pings, say)
      // points at something to look into.
      onGoaway: (goaway) =>
        opts.log[goaway.errorCode === 0 ? "info" : "warn"](
          "Teleport sent GOAWAY (HTTP/2 error {code}): reconnecting",
          {
            code: goaway.errorCode,
            ...(goaway.debugData === "" ? {} : { debugData: goaway.debugData.slice(0, 200) }),
          },
        ),
    },
  );
  const { client, ping } = connected.result;
  for (const failed of connected.failedAttempts) {
    opts.log.debug("Dial attempt failed: {plan}: {reason}", {
      plan: failed.description,
      reason: failed.reason,
    });
  }
  if (!versionAtLeast(ping.serverVersion, MIN_SERVER_VERSION)) {
    client.close();
    throw new Error(
      `Teleport ${ping.serverVersion} is too old: this plugin needs ${MIN_SERVER_VERSION} or newer`,
    );
  }
  if (
    opts.clusterName !== undefined && ping.clusterName !== "" &&
    ping.clusterName !== opts.clusterName
  ) {
    // The identity's cluster name only chose the TLS routing ALPN; emails use the cluster's own.
    opts.log.warn(
      "The cluster calls itself {cluster}, the identity's certificates {fromIdentity}: emails name {cluster}",
      { cluster: ping.clusterName, fromIdentity: opts.clusterName },
    );
  }
  opts.log.info("Connected to Teleport cluster {cluster} ({version}) via {route}", {
    cluster: ping.clusterName,
    version: ping.serverVersion,
    route: connected.channel.description,
  });
  return { client, ping };
}

/**
 * Every page of a listing, from the first key (""), `PAGE_SIZE` items a
 * page. A page too large for the client to receive (over grpc-js's 4 MiB:
 * 500 requests with long reasons and many resources) is asked for again
 * with half as many items, down to one, as Teleport's Go client does for its
 * listings. A next key the listing has already seen, or more than
 * `MAX_PAGES` pages, is an error: a faulty server would otherwise be listed
 * without end.
 */
async function listPages<T>(
  what: string,
  fetchPage: (key: string, limit: number) => Promise<{ items: T[]; next?: string | undefined }>,
): Promise<T[]> {
  const out: T[] = [];
  const seen = new Set<string>([""]);
  let limit = PAGE_SIZE;
  let key = "";
  for (let pages = 1;; pages++) {
    let page: { items: T[]; next?: string | undefined };
    try {
      page = await fetchPage(key, limit);
    } catch (error) {
      if (!isTeleportError(error, "too_large") || limit === 1) throw error;
      limit = Math.max(1, Math.floor(limit / 2));
      pages--;
      continue;
    }
    for (const item of page.items) out.push(item);
    const next = page.next ?? "";
    if (next === "") return out;
    if (seen.has(next) || pages >= MAX_PAGES) {
      throw new TeleportError(
        "other",
        `${what} failed: the server's pages do not end (${
          seen.has(next) ? "a next page key came back" : `over ${MAX_PAGES} pages`
        }); listing stopped`,
      );
    }
    seen.add(next);
    key = next;
  }
}
