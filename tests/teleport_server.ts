/**
 * An in-process fake of Teleport's Auth Service for integration tests: a real
 * `@grpc/grpc-js` server on 127.0.0.1 with mutual TLS (client certificates
 * are verified against the fake's own CA), serving our embedded proto, so
 * every message a client decodes went through the same serializers and field
 * numbers as the product. Its state is a `FakeCluster` (tests/fake_cluster.ts:
 * access requests, plugin data with its compare-and-swap, access monitoring
 * rules); this file turns it into Teleport's messages and answers, following
 * `teleport-wire/README.md` (watch INIT/PUT/DELETE, paging), and lets tests
 * drive the cluster: create, review, resolve and delete requests, drop
 * streams, refuse clients, restart on the same port, and see which client
 * certificate each RPC came with.
 * Test-only: never imported by the product.
 */

import * as grpc from "@grpc/grpc-js";
import type protobuf from "protobufjs";
import { Buffer } from "node:buffer";
import { X509Certificate } from "node:crypto";
import {
  AUTH_SERVICE,
  messageType,
  type PbAccessMonitoringRule,
  type PbAccessRequest,
  type PbAccessRequestFilter,
  type PbEvent,
  type PbListAccessMonitoringRulesRequest,
  type PbListAccessRequestsRequest,
  type PbPluginData,
  type PbPluginDataFilter,
  type PbPluginDataUpdateParams,
  type PbTimestamp,
  type PbWatch,
  type PbWatchKind,
  teleportProto,
} from "../src/teleport/proto.ts";
import {
  KIND_ACCESS_MONITORING_RULE,
  KIND_ACCESS_REQUEST,
  UNSET_TIME_SECONDS,
} from "../src/teleport/convert.ts";
import type { AccessRequest, AccessReview, RequestState } from "../src/teleport/types.ts";
import {
  type ClusterChange,
  FAKE_PING,
  FakeCluster,
  type FakeRule,
  type OrderedRequest,
  StatusError,
} from "./fake_cluster.ts";
import {
  identityFileText,
  issueCert,
  type KeyType,
  makeCa,
  type Pem,
  TELEPORT_SERVER_NAME,
  writeIdentityFile,
} from "./pki.ts";

/** Grace `stop()` gives in-flight unary calls before connections are cut. */
const SHUTDOWN_GRACE_MS = 500;
/** How long `restart()` keeps retrying to bind the old port (the OS may hold it briefly). */
const REBIND_TIMEOUT_MS = 3_000;
/** Pause between two bind attempts of `restart()`. */
const REBIND_RETRY_MS = 25;
/** Default wait of the `waitFor…` helpers. */
const DEFAULT_WAIT_MS = 5_000;
/** Poll interval of the `waitFor…` helpers. */
const WAIT_POLL_MS = 5;
/** How long a new request stays pending when `expires` is not given (Teleport's default). */
const DEFAULT_REQUEST_TTL_MS = 3600_000;

/** Resource kinds in watches and plugin data, as Teleport names them. */
export { KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST };
/** Go's zero `time.Time`: how Teleport encodes an unset non-nullable timestamp. */
export const ZERO_TIME_SECONDS = UNSET_TIME_SECONDS;

/** The RPCs the fake serves, by method name. */
export type TeleportMethod =
  | "Ping"
  | "WatchEvents"
  | "ListAccessRequests"
  | "GetAccessRequestsV2"
  | "GetPluginData"
  | "UpdatePluginData"
  | "ListAccessMonitoringRulesWithFilter"
  | "UsersService/GetUser"
  | "GetUser";

export interface TeleportTestServerOptions {
  /** The state to serve (shared with other servers or fake clients); default a new one. */
  cluster?: FakeCluster;
  /** Default `"teleport.example.com"`. */
  clusterName?: string;
  /** Ping's ServerVersion; default `"17.4.8"`. */
  serverVersion?: string;
  /** Ping's ServerFeatures.AdvancedAccessWorkflows; default true. */
  advancedAccessWorkflows?: boolean;
  /** Ping's ProxyPublicAddr; default `"teleport.example.com:443"` (may be ""). */
  proxyPublicAddr?: string;
  /**
   * Whether the client may read access monitoring rules; default true. When
   * false the kind is dropped from partial-success watches, refused
   * (PERMISSION_DENIED) in others, and the list RPC answers PERMISSION_DENIED.
   */
  allowAccessMonitoringRules?: boolean;
  /** Whether the client may read users (GetUser); false answers PERMISSION_DENIED. Default true. */
  allowReadUsers?: boolean;
  /** false: `teleport.users.v1.UsersService` answers UNIMPLEMENTED (an older server); default true. */
  implementUsersService?: boolean;
  /** Largest page of the list RPCs, whatever the client asks; default 2 (exercises paging). */
  listPageSize?: number;
  /** false: ListAccessRequests answers UNIMPLEMENTED (an old server); default true. */
  implementListAccessRequests?: boolean;
  /** Port to bind on 127.0.0.1; default 0 (any free port). */
  port?: number;
  /** Use this CA instead of making one (both user and host CA). */
  ca?: Pem;
  /** Key type of the CA and certificates made here; default `"rsa"`. */
  keyType?: KeyType;
  /** Clock for `Created` times; default the system clock. */
  now?: () => Date;
}

/** A client identity issued by the fake's CA, the parts of a Teleport identity file. */
export interface ClientIdentity {
  /** PEM private key. */
  key: string;
  /** PEM TLS client certificate. */
  cert: string;
  /** PEM CA certificates to trust. */
  cas: string[];
  clusterName: string;
  /** The certificate's serial, as {@linkcode normalizeSerial} writes it. */
  serial: string;
  /** The certificate's subject CN (the Teleport user). */
  user: string;
  notAfter: Date;
}

export interface IssueIdentityOptions {
  /** Subject CN; default `"access-plugin"`. */
  user?: string;
  notBefore?: Date;
  /** Default one day from now. */
  notAfter?: Date;
  /** Hex serial; random when absent. */
  serial?: string;
  keyType?: KeyType;
}

/** One RPC as the server saw it, with the client certificate it came on. */
export interface PeerRecord {
  method: TeleportMethod;
  /** Client certificate serial, {@linkcode normalizeSerial}d; "" if none was seen. */
  serial: string;
  /** Client certificate subject CN. */
  commonName: string;
  /** `ip:port` of the client end of the connection (identifies the connection). */
  peer: string;
  at: Date;
}

export interface CreateRequestOptions {
  user: string;
  roles: string[];
  reason?: string;
  suggestedReviewers?: string[];
  /** Default a random UUID. */
  id?: string;
  requestedResources?: Array<
    { kind: string; name: string; clusterName?: string; subResourceName?: string }
  >;
  /** When the pending request expires; default one hour after creation. */
  expires?: Date;
  /** Absolute time; unset is sent as Go's zero time, as Teleport does. */
  maxDuration?: Date;
  /** Absolute time; unset is sent as Go's zero time, as Teleport does. */
  sessionTtl?: Date;
  /** Default now (the `now` option). */
  created?: Date;
  loginHint?: string;
  systemAnnotations?: Record<string, string[]>;
}

export interface ReviewOptions {
  author: string;
  proposedState: "APPROVED" | "DENIED";
  reason?: string;
  /** The reviewer's roles. */
  roles?: string[];
  /**
   * Also resolve the request to `proposedState` with this reason in the same
   * PUT, as Teleport does when the review meets the approval threshold.
   */
  resolve?: boolean;
}

/** An access monitoring rule as tests write it; see `putRule`. */
export interface RuleInput {
  name: string;
  /** Default `["access_request"]`. */
  subjects?: string[];
  states?: string[];
  condition?: string;
  notification?: { name: string; recipients: string[] };
  desiredState?: string;
}

/** A gRPC status to answer with. */
export interface InjectedStatus {
  code: grpc.status;
  details?: string;
}

interface Watcher {
  call: grpc.ServerWritableStream<PbWatch, PbEvent>;
  kinds: Set<string>;
}

type Handler = grpc.UntypedHandleCall;

/**
 * Lower-case hex without leading zeros: one spelling of a serial whether it
 * came from Node's TLS peer certificate (upper case, no leading zeros) or
 * from `X509Certificate.serialNumber` (upper case, DER bytes).
 */
export function normalizeSerial(hex: string): string {
  const s = hex.replaceAll(":", "").toLowerCase().replace(/^0+/, "");
  return s === "" ? "0" : s;
}

/** An in-process Teleport Auth Service; see the module comment. */
export class TeleportTestServer {
  readonly clusterName: string;
  readonly serverVersion: string;
  /** The CA (certificate and key) that signs the server and client certificates. */
  readonly ca: Pem;
  /** The server's certificate and key (SAN teleport.cluster.local, localhost, 127.0.0.1). */
  readonly serverCert: Pem;
  /** Every RPC with the client certificate it came on, oldest first. */
  readonly peers: PeerRecord[] = [];
  /** The state served: access requests, plugin data, rules. */
  readonly cluster: FakeCluster;

  advancedAccessWorkflows: boolean;
  proxyPublicAddr: string;
  allowAccessMonitoringRules: boolean;
  allowReadUsers: boolean;
  implementUsersService: boolean;
  listPageSize: number;
  implementListAccessRequests: boolean;

  #port: number;
  #server: grpc.Server | undefined;
  #closed = false;
  #refusing = false;
  #now: () => Date;
  #keyType: KeyType;
  #unsubscribe: () => void;
  #watchers = new Set<Watcher>();
  #calls = new Map<TeleportMethod, number>();
  #injected = new Map<TeleportMethod, { status: InjectedStatus; times: number }>();

  private constructor(opts: TeleportTestServerOptions, ca: Pem, serverCert: Pem) {
    this.clusterName = opts.clusterName ?? FAKE_PING.clusterName;
    this.serverVersion = opts.serverVersion ?? FAKE_PING.serverVersion;
    this.advancedAccessWorkflows = opts.advancedAccessWorkflows ??
      FAKE_PING.advancedAccessWorkflows;
    this.proxyPublicAddr = opts.proxyPublicAddr ?? FAKE_PING.proxyPublicAddr;
    this.allowAccessMonitoringRules = opts.allowAccessMonitoringRules ?? true;
    this.allowReadUsers = opts.allowReadUsers ?? true;
    this.implementUsersService = opts.implementUsersService ?? true;
    this.listPageSize = opts.listPageSize ?? 2;
    this.implementListAccessRequests = opts.implementListAccessRequests ?? true;
    this.#port = opts.port ?? 0;
    this.#now = opts.now ?? (() => new Date());
    this.#keyType = opts.keyType ?? "rsa";
    this.ca = ca;
    this.serverCert = serverCert;
    this.cluster = opts.cluster ?? new FakeCluster();
    this.#unsubscribe = this.cluster.subscribe((change) => this.#broadcast(change));
  }

  /** Makes the PKI and starts serving on 127.0.0.1. */
  static async start(opts: TeleportTestServerOptions = {}): Promise<TeleportTestServer> {
    const keyType = opts.keyType ?? "rsa";
    const ca = opts.ca ?? await makeCa(opts.clusterName ?? FAKE_PING.clusterName, { keyType });
    const serverCert = await issueCert(ca, {
      commonName: TELEPORT_SERVER_NAME,
      dnsNames: [TELEPORT_SERVER_NAME, `*.${TELEPORT_SERVER_NAME}`, "localhost"],
      ipAddresses: ["127.0.0.1"],
      usage: "server",
      organization: "Auth",
      keyType,
    });
    const server = new TeleportTestServer(opts, ca, serverCert);
    await server.#listen(false);
    return server;
  }

  /** The CA certificate, PEM. */
  get caPem(): string {
    return this.ca.cert;
  }

  get port(): number {
    return this.#port;
  }

  /** `127.0.0.1:<port>`. */
  get addr(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Whether the server is listening (false after `stop()` until `restart()`). */
  get running(): boolean {
    return this.#server !== undefined;
  }

  /** Open WatchEvents streams. */
  get watchersConnected(): number {
    return this.#watchers.size;
  }

  /** Distinct client certificate serials seen, in order of first use. */
  get serialsSeen(): string[] {
    return [...new Set(this.peers.map((p) => p.serial))];
  }

  /** How many times `method` was called (refused and failed calls included). */
  callCount(method: TeleportMethod): number {
    return this.#calls.get(method) ?? 0;
  }

  /** Calls per method so far. */
  get calls(): Partial<Record<TeleportMethod, number>> {
    return Object.fromEntries(this.#calls);
  }

  // -------------------------------------------------------------------------
  // PKI

  /** A client certificate for `user` signed by the fake's CA. */
  async issueClientIdentity(opts: IssueIdentityOptions = {}): Promise<ClientIdentity> {
    const user = opts.user ?? "access-plugin";
    const pem = await issueCert(this.ca, {
      commonName: user,
      usage: "client",
      organization: "access-plugin",
      keyType: opts.keyType ?? this.#keyType,
      ...(opts.notBefore !== undefined ? { notBefore: opts.notBefore } : {}),
      ...(opts.notAfter !== undefined ? { notAfter: opts.notAfter } : {}),
      ...(opts.serial !== undefined ? { serial: opts.serial } : {}),
    });
    const x509 = new X509Certificate(pem.cert);
    return {
      key: pem.key,
      cert: pem.cert,
      cas: [this.ca.cert],
      clusterName: this.clusterName,
      serial: normalizeSerial(x509.serialNumber),
      user,
      notAfter: new Date(x509.validTo),
    };
  }

  /** Issues a client identity and writes it to `path` as a Teleport identity file (mode 0600). */
  async writeIdentity(path: string, opts: IssueIdentityOptions = {}): Promise<ClientIdentity> {
    const id = await this.issueClientIdentity(opts);
    await writeIdentityFile(path, id);
    return id;
  }

  /** The identity file text of `id`. */
  identityText(id: ClientIdentity): string {
    return identityFileText(id);
  }

  // -------------------------------------------------------------------------
  // Cluster state, as tests drive it

  /** Creates a PENDING request and emits PUT; returns it as the wire carries it. */
  createRequest(o: CreateRequestOptions): PbAccessRequest {
    const id = o.id ?? crypto.randomUUID();
    if (this.cluster.requests.has(id)) throw new Error(`Access request "${id}" already exists`);
    const created = o.created ?? this.#now();
    const request: AccessRequest = {
      id,
      user: o.user,
      roles: [...o.roles],
      state: "PENDING",
      created,
      expires: o.expires ?? new Date(created.getTime() + DEFAULT_REQUEST_TTL_MS),
      requestReason: o.reason ?? "",
      resolveReason: "",
      systemAnnotations: structuredClone(o.systemAnnotations ?? {}),
      reviews: [],
      suggestedReviewers: [...(o.suggestedReviewers ?? [])],
      requestedResources: (o.requestedResources ?? []).map((r) => ({
        clusterName: r.clusterName ?? this.clusterName,
        kind: r.kind,
        name: r.name,
        subResourceName: r.subResourceName ?? "",
      })),
      loginHint: o.loginHint ?? "",
      ...(o.maxDuration ? { maxDuration: o.maxDuration } : {}),
      ...(o.sessionTtl ? { sessionTtl: o.sessionTtl } : {}),
    };
    return toPbAccessRequest(this.cluster.putRequest(request));
  }

  /** The stored request (a copy), or undefined. */
  request(id: string): PbAccessRequest | undefined {
    const stored = this.cluster.requests.get(id);
    return stored && toPbAccessRequest(stored);
  }

  /** Ids of the stored requests, oldest first. */
  requestIds(): string[] {
    return this.cluster.creationOrder().map((r) => r.request.id);
  }

  /** Appends a review (optionally resolving the request) and emits PUT. */
  review(id: string, o: ReviewOptions): PbAccessRequest {
    const review: AccessReview = {
      author: o.author,
      roles: [...(o.roles ?? [])],
      proposedState: o.proposedState,
      reason: o.reason ?? "",
      created: this.#now(),
    };
    return toPbAccessRequest(this.cluster.updateRequest(id, (r) => ({
      ...r,
      reviews: [...r.reviews, review],
      ...(o.resolve ? { state: o.proposedState, resolveReason: o.reason ?? "" } : {}),
    })));
  }

  /** Sets the state to APPROVED with `reason` and emits PUT. */
  approve(id: string, reason = ""): PbAccessRequest {
    return this.#resolve(id, "APPROVED", reason);
  }

  /** Sets the state to DENIED with `reason` and emits PUT. */
  deny(id: string, reason = ""): PbAccessRequest {
    return this.#resolve(id, "DENIED", reason);
  }

  /** Sets the state to PROMOTED (to `accessList`, if given) and emits PUT. */
  promote(
    id: string,
    reason = "",
    accessList?: { name: string; title: string },
  ): PbAccessRequest {
    return this.#resolve(id, "PROMOTED", reason, accessList && { accessList: { ...accessList } });
  }

  /** Deletes the request and emits DELETE; its plugin data stays, as in Teleport. */
  deleteRequest(id: string): void {
    this.cluster.deleteRequest(id);
  }

  /** Creates or replaces an access monitoring rule and emits PUT. */
  putRule(input: RuleInput): PbAccessMonitoringRule {
    return toPbRule(this.cluster.putRule({
      name: input.name,
      subjects: [...(input.subjects ?? [KIND_ACCESS_REQUEST])],
      states: [...(input.states ?? [])],
      condition: input.condition ?? "",
      notification: {
        name: input.notification?.name ?? "",
        recipients: [...(input.notification?.recipients ?? [])],
      },
      desiredState: input.desiredState ?? "",
    }));
  }

  /** Deletes an access monitoring rule and emits DELETE. */
  deleteRule(name: string): void {
    this.cluster.deleteRule(name);
  }

  /** The data `plugin` stored on request `id` (a copy), or undefined. */
  pluginData(id: string, plugin = "email"): Record<string, string> | undefined {
    return this.cluster.getPluginData(id, plugin);
  }

  /** Replaces `plugin`'s data on `id` (no checks, no request needed); `{}` removes it. */
  setPluginData(id: string, data: Record<string, string>, plugin = "email"): void {
    this.cluster.setPluginData(id, data, plugin);
  }

  // -------------------------------------------------------------------------
  // Failures

  /** The next `times` calls of `method` answer `status` (after being counted and recorded). */
  failNext(method: TeleportMethod, status: InjectedStatus, times = 1): void {
    this.#injected.set(method, { status, times });
  }

  /** Ends every open WatchEvents stream with UNAVAILABLE. */
  dropStreams(details = "watcher closed by the fake auth server"): void {
    for (const w of [...this.#watchers]) {
      this.#endWatcher(w, { code: grpc.status.UNAVAILABLE, details });
    }
  }

  /**
   * While on, every RPC answers UNAVAILABLE and open watch streams end with
   * UNAVAILABLE: an Auth Service that is up but cannot reach its backend
   * (Teleport maps its connection problems to UNAVAILABLE). Connections and
   * TLS still work, so turning it off heals at once; for a server that is
   * not there at all (connection refused), use `stop()`.
   */
  refuseClients(on: boolean): void {
    this.#refusing = on;
    if (on) this.dropStreams("connection problem: the backend is unavailable");
  }

  /**
   * Stops listening: watch streams end with UNAVAILABLE, in-flight unary
   * calls get a short grace, then every connection is cut. State is kept.
   */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    this.dropStreams("the auth server is shutting down");
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
      new Promise<void>((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)),
    ]);
    clearTimeout(timer);
    server.forceShutdown();
  }

  /** Stops (if running) and listens again on the same port with the same state and PKI. */
  async restart(): Promise<void> {
    if (this.#closed) throw new Error("The fake auth server is closed");
    await this.stop();
    await this.#listen(true);
  }

  /** Hard teardown: cuts every connection at once; the server cannot be restarted. */
  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    const server = this.#server;
    this.#server = undefined;
    for (const w of [...this.#watchers]) {
      this.#endWatcher(w, { code: grpc.status.UNAVAILABLE, details: "server closed" });
    }
    server?.forceShutdown();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Waits until `count` watch streams are open. */
  waitForWatchers(count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return waitUntil(() => this.#watchers.size === count, timeoutMs, `${count} watchers`);
  }

  /** Waits until `method` has been called at least `count` times. */
  waitForCalls(method: TeleportMethod, count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return waitUntil(() => this.callCount(method) >= count, timeoutMs, `${count} ${method} calls`);
  }

  // -------------------------------------------------------------------------
  // Serving

  async #listen(rebind: boolean): Promise<void> {
    const server = new grpc.Server();
    const proto = teleportProto();
    server.addService(proto.AuthService.service, this.#authHandlers());
    server.addService(proto.AccessMonitoringRulesService.service, this.#amrHandlers());
    server.addService(proto.UsersService.service, this.#usersHandlers());
    const creds = grpc.ServerCredentials.createSsl(
      Buffer.from(this.ca.cert),
      [{
        cert_chain: Buffer.from(this.serverCert.cert),
        private_key: Buffer.from(this.serverCert.key),
      }],
      true,
    );
    const deadline = Date.now() + REBIND_TIMEOUT_MS;
    for (;;) {
      try {
        this.#port = await new Promise<number>((resolve, reject) =>
          server.bindAsync(
            `127.0.0.1:${this.#port}`,
            creds,
            (err, port) => err ? reject(err) : resolve(port),
          )
        );
        break;
      } catch (err) {
        if (!rebind || Date.now() > deadline) {
          server.forceShutdown();
          throw new Error(`Cannot bind the fake auth server to port ${this.#port}`, { cause: err });
        }
        await sleep(REBIND_RETRY_MS);
      }
    }
    this.#server = server;
  }

  #authHandlers(): grpc.UntypedServiceImplementation {
    return {
      Ping: this.#unary("Ping", "proto.PingResponse", () => ({
        ClusterName: this.clusterName,
        ServerVersion: this.serverVersion,
        ServerFeatures: {
          AccessControls: true,
          AdvancedAccessWorkflows: this.advancedAccessWorkflows,
        },
        ProxyPublicAddr: this.proxyPublicAddr,
      })),
      WatchEvents: this.#watchEvents(),
      ListAccessRequests: this.#unary(
        "ListAccessRequests",
        "proto.ListAccessRequestsResponse",
        (req: PbListAccessRequestsRequest) => this.#listAccessRequests(req),
      ),
      GetAccessRequestsV2: this.#stream(
        "GetAccessRequestsV2",
        "types.AccessRequestV3",
        (filter: PbAccessRequestFilter) =>
          this.cluster.creationOrder()
            .filter((r) => matchesFilter(r.request, filter))
            .map((r) => toPbAccessRequest(r.request)),
      ),
      GetPluginData: this.#unary(
        "GetPluginData",
        "proto.PluginDataSeq",
        (filter: PbPluginDataFilter) => ({ PluginData: this.#getPluginData(filter) }),
      ),
      GetUser: this.#unary(
        "GetUser",
        "types.UserV2",
        (req: { Name?: string }) => this.#getUser(req.Name ?? ""),
      ),
      UpdatePluginData: this.#unary(
        "UpdatePluginData",
        "google.protobuf.Empty",
        (params: PbPluginDataUpdateParams) => {
          this.#updatePluginData(params);
          return {};
        },
      ),
    };
  }

  #usersHandlers(): grpc.UntypedServiceImplementation {
    return {
      GetUser: this.#unary(
        "UsersService/GetUser",
        "teleport.users.v1.GetUserResponse",
        (req: { name?: string }) => {
          if (!this.implementUsersService) {
            throw statusError(
              grpc.status.UNIMPLEMENTED,
              "unknown service teleport.users.v1.UsersService",
            );
          }
          return { user: this.#getUser(req.name ?? "") };
        },
      ),
    };
  }

  /** A user as `types.UserV2`, after the permission check both GetUser calls make. */
  #getUser(name: string) {
    if (!this.allowReadUsers) {
      throw statusError(
        grpc.status.PERMISSION_DENIED,
        `access denied to perform action "read" on "user"`,
      );
    }
    const user = this.cluster.getUser(name);
    const Values = Object.fromEntries(
      Object.entries(user.traits).map(([key, values]) => [key, { Values: values }]),
    );
    return {
      Kind: "user",
      Version: "v2",
      Metadata: { Name: user.name },
      Spec: { Traits: { Values } },
    };
  }

  #amrHandlers(): grpc.UntypedServiceImplementation {
    return {
      ListAccessMonitoringRulesWithFilter: this.#unary(
        "ListAccessMonitoringRulesWithFilter",
        "teleport.accessmonitoringrules.v1.ListAccessMonitoringRulesWithFilterResponse",
        (req: PbListAccessMonitoringRulesRequest) => this.#listRules(req),
      ),
    };
  }

  /**
   * Counts the call and records its client certificate; returns the status
   * to answer instead of serving it (refusal or injected failure), if any.
   */
  #admit(
    method: TeleportMethod,
    call: Pick<grpc.ServerUnaryCall<unknown, unknown>, "getAuthContext" | "getPeer">,
  ): InjectedStatus | undefined {
    this.#calls.set(method, this.callCount(method) + 1);
    const cert = call.getAuthContext().sslPeerCertificate;
    this.peers.push({
      method,
      serial: cert?.serialNumber ? normalizeSerial(cert.serialNumber) : "",
      commonName: String(cert?.subject?.CN ?? ""),
      peer: call.getPeer(),
      at: new Date(),
    });
    if (this.#refusing) {
      return {
        code: grpc.status.UNAVAILABLE,
        details: "connection problem: the backend is unavailable",
      };
    }
    const injected = this.#injected.get(method);
    if (injected) {
      if (--injected.times <= 0) this.#injected.delete(method);
      return injected.status;
    }
    return undefined;
  }

  #unary<Req, Res>(
    method: TeleportMethod,
    responseType: string,
    fn: (req: Req) => Res,
  ): Handler {
    return (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      const refused = this.#admit(method, call);
      if (refused) return callback(refused);
      try {
        const res = fn(call.request);
        assertKnownFields(messageType(responseType), res, responseType);
        callback(null, res);
      } catch (err) {
        callback(toStatus(err));
      }
    };
  }

  #stream<Req, Res>(
    method: TeleportMethod,
    responseType: string,
    fn: (req: Req) => Res[],
  ): Handler {
    return (call: grpc.ServerWritableStream<Req, Res>) => {
      const refused = this.#admit(method, call);
      if (refused) return void call.emit("error", refused);
      try {
        const items = fn(call.request);
        for (const item of items) {
          assertKnownFields(messageType(responseType), item, responseType);
          call.write(item);
        }
        call.end();
      } catch (err) {
        call.emit("error", toStatus(err));
      }
    };
  }

  #watchEvents(): Handler {
    return (call: grpc.ServerWritableStream<PbWatch, PbEvent>) => {
      const refused = this.#admit("WatchEvents", call);
      if (refused) return void call.emit("error", refused);
      const partial = call.request.AllowPartialSuccess === true;
      const requested = call.request.Kinds ?? [];
      const accepted: PbWatchKind[] = [];
      for (const kind of requested) {
        if (kind.Kind === KIND_ACCESS_MONITORING_RULE && !this.allowAccessMonitoringRules) {
          if (partial) continue;
          return void call.emit("error", {
            code: grpc.status.PERMISSION_DENIED,
            details: `access denied to perform action "list" on "${KIND_ACCESS_MONITORING_RULE}"`,
          });
        }
        accepted.push(kind);
      }
      if (accepted.length === 0) {
        return void call.emit("error", {
          code: grpc.status.INVALID_ARGUMENT,
          details: requested.length === 0
            ? "watch requires at least one resource kind"
            : "none of the requested resource kinds can be watched",
        });
      }
      const watcher: Watcher = { call, kinds: new Set(accepted.map((k) => k.Kind ?? "")) };
      this.#watchers.add(watcher);
      const forget = () => this.#watchers.delete(watcher);
      call.on("cancelled", forget);
      call.on("close", forget);
      call.on("error", forget);
      const init: PbEvent = partial
        ? {
          Type: "INIT",
          WatchStatus: {
            Kind: "watch_status",
            Version: "v1",
            Metadata: { Name: "watch_status" },
            Spec: { Kinds: accepted.map(watchKindCopy) },
          },
        }
        : { Type: "INIT" };
      this.#write(watcher, init);
    };
  }

  #write(watcher: Watcher, event: PbEvent): void {
    assertKnownFields(messageType("proto.Event"), event, "proto.Event");
    if (watcher.call.writable) watcher.call.write(structuredClone(event));
  }

  #emit(kind: string, event: PbEvent): void {
    for (const w of this.#watchers) if (w.kinds.has(kind)) this.#write(w, event);
  }

  /** A change of the cluster, to the watchers of its kind. */
  #broadcast(change: ClusterChange): void {
    this.#emit(change.kind, toPbEvent(change));
  }

  #endWatcher(w: Watcher, status: InjectedStatus): void {
    this.#watchers.delete(w);
    if (w.call.writable) w.call.emit("error", status);
  }

  #resolve(
    id: string,
    state: RequestState,
    reason: string,
    extra: Partial<AccessRequest> = {},
  ): PbAccessRequest {
    return toPbAccessRequest(
      this.cluster.updateRequest(id, (r) => ({ ...r, ...extra, state, resolveReason: reason })),
    );
  }

  #listAccessRequests(req: PbListAccessRequestsRequest) {
    if (!this.implementListAccessRequests) {
      throw statusError(
        grpc.status.UNIMPLEMENTED,
        `unknown method ListAccessRequests for service ${AUTH_SERVICE}`,
      );
    }
    const descending = req.Descending === true;
    const ordered = this.cluster.creationOrder();
    if (descending) ordered.reverse();
    const matching = ordered.filter((r) => matchesFilter(r.request, req.Filter ?? {}));
    let start = 0;
    if (req.StartKey) {
      const key = parsePageKey(req.StartKey);
      start = matching.findIndex((r) =>
        descending ? comparePageKey(r, key) <= 0 : comparePageKey(r, key) >= 0
      );
      if (start < 0) start = matching.length;
    }
    const limit = req.Limit && req.Limit > 0
      ? Math.min(req.Limit, this.listPageSize)
      : this.listPageSize;
    const page = matching.slice(start, start + limit);
    const next = matching[start + limit];
    return {
      AccessRequests: page.map((r) => toPbAccessRequest(r.request)),
      NextKey: next ? `${next.createdMs}/${next.seq}` : "",
    };
  }

  #getPluginData(filter: PbPluginDataFilter): PbPluginData[] {
    if (filter.Kind !== KIND_ACCESS_REQUEST) {
      throw statusError(
        grpc.status.INVALID_ARGUMENT,
        `unsupported resource kind ${JSON.stringify(filter.Kind ?? "")}`,
      );
    }
    const found = this.cluster.findPluginData({
      ...(filter.Resource ? { resource: filter.Resource } : {}),
      ...(filter.Plugin ? { plugin: filter.Plugin } : {}),
    });
    return found.map(({ requestId, entries }) => ({
      Kind: "plugin_data",
      SubKind: KIND_ACCESS_REQUEST,
      Version: "v3",
      Metadata: { Name: requestId, Namespace: "default" },
      Spec: {
        Entries: Object.fromEntries(
          Object.entries(entries).map(([plugin, data]) => [plugin, { Data: data }]),
        ),
      },
    }));
  }

  /** Teleport's `updateAccessRequestPluginData`; the compare-and-swap is the cluster's. */
  #updatePluginData(p: PbPluginDataUpdateParams): void {
    if (p.Kind !== KIND_ACCESS_REQUEST) {
      throw statusError(
        grpc.status.INVALID_ARGUMENT,
        `unsupported resource kind ${JSON.stringify(p.Kind ?? "")}`,
      );
    }
    this.cluster.updatePluginData(p.Resource ?? "", p.Set ?? {}, p.Expect ?? {}, p.Plugin ?? "");
  }

  #listRules(req: PbListAccessMonitoringRulesRequest) {
    if (!this.allowAccessMonitoringRules) {
      throw statusError(
        grpc.status.PERMISSION_DENIED,
        `access denied to perform action "list" on "${KIND_ACCESS_MONITORING_RULE}"`,
      );
    }
    const matching = this.cluster.listRules({
      subjects: req.subjects ?? [],
      ...(req.notification_name ? { notificationName: req.notification_name } : {}),
    });
    let start = 0;
    if (req.page_token) {
      start = matching.findIndex((r) => r.name >= (req.page_token ?? ""));
      if (start < 0) start = matching.length;
    }
    const size = req.page_size && req.page_size > 0
      ? Math.min(req.page_size, this.listPageSize)
      : this.listPageSize;
    const next = matching[start + size];
    return {
      rules: matching.slice(start, start + size).map(toPbRule),
      next_page_token: next?.name ?? "",
    };
  }
}

// ---------------------------------------------------------------------------

function timestamp(d: Date): PbTimestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

function zeroTime(): PbTimestamp {
  return { seconds: ZERO_TIME_SECONDS, nanos: 0 };
}

function labelValues(m: Readonly<Record<string, readonly string[]>>) {
  return {
    Values: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { Values: [...v] }])),
  };
}

/**
 * An access request as Teleport sends it: Go's zero time for the unset
 * `MaxDuration` and `SessionTTL`, the expiry in both `Metadata` and `Spec`.
 */
function toPbAccessRequest(r: AccessRequest): PbAccessRequest {
  const expires = r.expires && timestamp(r.expires);
  return {
    Kind: KIND_ACCESS_REQUEST,
    Version: "v3",
    Metadata: {
      Name: r.id,
      Namespace: "default",
      ...(expires ? { Expires: expires } : {}),
      Revision: r.revision ?? "",
    },
    Spec: {
      User: r.user,
      Roles: [...r.roles],
      State: r.state,
      ...(r.created ? { Created: timestamp(r.created) } : {}),
      ...(expires ? { Expires: expires } : {}),
      RequestReason: r.requestReason,
      ResolveReason: r.resolveReason,
      Reviews: r.reviews.map((v) => ({
        Author: v.author,
        Roles: [...v.roles],
        ProposedState: v.proposedState,
        Reason: v.reason,
        ...(v.created ? { Created: timestamp(v.created) } : {}),
      })),
      SuggestedReviewers: [...r.suggestedReviewers],
      RequestedResourceIDs: r.requestedResources.map((id) => ({
        ClusterName: id.clusterName,
        Kind: id.kind,
        Name: id.name,
        SubResourceName: id.subResourceName,
      })),
      LoginHint: r.loginHint,
      MaxDuration: r.maxDuration ? timestamp(r.maxDuration) : zeroTime(),
      SessionTTL: r.sessionTtl ? timestamp(r.sessionTtl) : zeroTime(),
      ...(r.assumeStartTime ? { AssumeStartTime: timestamp(r.assumeStartTime) } : {}),
      ...(r.resourceExpiry ? { ResourceExpiry: timestamp(r.resourceExpiry) } : {}),
      ...(r.accessList
        ? { accessList: { Name: r.accessList.name, Title: r.accessList.title } }
        : {}),
      ...(Object.keys(r.systemAnnotations).length > 0
        ? { SystemAnnotations: labelValues(r.systemAnnotations) }
        : {}),
    },
  };
}

function toPbRule(r: FakeRule): PbAccessMonitoringRule {
  const { notification } = r;
  return {
    metadata: { name: r.name, revision: r.revision ?? "" },
    kind: KIND_ACCESS_MONITORING_RULE,
    version: "v1",
    spec: {
      subjects: [...r.subjects],
      states: [...r.states],
      condition: r.condition,
      // A rule without a notification has none on the wire.
      ...(notification.name !== "" || notification.recipients.length > 0
        ? { notification: { name: notification.name, recipients: [...notification.recipients] } }
        : {}),
      desired_state: r.desiredState,
    },
  };
}

/** A cluster change as a watch event: PUT with the resource, DELETE with its header only. */
export function toPbEvent(change: ClusterChange): PbEvent {
  if (change.type === "put") {
    return change.kind === KIND_ACCESS_REQUEST
      ? { Type: "PUT", AccessRequest: toPbAccessRequest(change.request) }
      : { Type: "PUT", AccessMonitoringRule: toPbRule(change.rule) };
  }
  const isRequest = change.kind === KIND_ACCESS_REQUEST;
  return {
    Type: "DELETE",
    ResourceHeader: {
      Kind: change.kind,
      Version: isRequest ? "v3" : "v1",
      Metadata: isRequest ? { Name: change.name, Namespace: "default" } : { Name: change.name },
    },
  };
}

function watchKindCopy(k: PbWatchKind): PbWatchKind {
  return {
    Kind: k.Kind ?? "",
    LoadSecrets: k.LoadSecrets ?? false,
    Name: k.Name ?? "",
    Filter: { ...(k.Filter ?? {}) },
    SubKind: k.SubKind ?? "",
  };
}

function matchesFilter(req: AccessRequest, f: PbAccessRequestFilter): boolean {
  if (f.ID && req.id !== f.ID) return false;
  if (f.User && req.user !== f.User) return false;
  if (f.State !== undefined && f.State !== "NONE" && f.State !== 0 && req.state !== f.State) {
    return false;
  }
  return true;
}

function parsePageKey(key: string): { createdMs: number; seq: number } {
  const m = /^(-?\d+)\/(\d+)$/.exec(key);
  if (!m) {
    throw statusError(grpc.status.INVALID_ARGUMENT, `invalid start key ${JSON.stringify(key)}`);
  }
  return { createdMs: Number(m[1]), seq: Number(m[2]) };
}

function comparePageKey(r: OrderedRequest, key: { createdMs: number; seq: number }): number {
  return r.createdMs - key.createdMs || r.seq - key.seq;
}

function statusError(code: grpc.status, details: string): StatusError {
  return new StatusError(code, details);
}

function toStatus(err: unknown): InjectedStatus {
  if (err instanceof StatusError) return { code: err.code, details: err.details };
  return { code: grpc.status.INTERNAL, details: `fake auth server: ${String(err)}` };
}

/**
 * Throws if `value` has a key that is not a field (or oneof) of `type`: the
 * serializer would drop it silently, hiding a typo in this fake.
 */
function assertKnownFields(type: protobuf.Type, value: unknown, path: string): void {
  if (value === null || typeof value !== "object") return;
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const field = type.fields[key];
    if (!field) {
      if (type.oneofs?.[key]) continue;
      throw new Error(`Fake auth server bug: ${path}.${key} is not a field of ${type.fullName}`);
    }
    const sub = field.resolvedType;
    if (!sub || !("fields" in sub)) continue;
    const msg = sub as protobuf.Type;
    if (field.map) {
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        assertKnownFields(msg, item, `${path}.${key}[${k}]`);
      }
    } else if (field.repeated) {
      (v as unknown[]).forEach((item, i) => assertKnownFields(msg, item, `${path}.${key}[${i}]`));
    } else {
      assertKnownFields(msg, v, `${path}.${key}`);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(WAIT_POLL_MS);
  }
}
