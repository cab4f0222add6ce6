/**
 * An in-process fake of Teleport's Auth Service for integration tests: a real
 * `@grpc/grpc-js` server on 127.0.0.1 with mutual TLS (client certificates
 * are verified against the fake's own CA), serving our embedded proto, so
 * every message a client decodes went through the same serializers and field
 * numbers as the product. It keeps access requests, plugin data and access
 * monitoring rules in memory, follows the semantics of
 * `teleport-wire/README.md` (watch INIT/PUT/DELETE, plugin-data
 * compare-and-swap, paging), and lets tests drive the cluster: create,
 * review, resolve and delete requests, drop streams, refuse clients, restart
 * on the same port, and see which client certificate each RPC came with.
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
  type PbAccessReview,
  type PbEvent,
  type PbListAccessMonitoringRulesRequest,
  type PbListAccessRequestsRequest,
  type PbPluginData,
  type PbPluginDataFilter,
  type PbPluginDataUpdateParams,
  type PbRequestState,
  type PbResourceId,
  type PbTimestamp,
  type PbWatch,
  type PbWatchKind,
  teleportProto,
} from "../src/teleport/proto.ts";
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

/** Resource kind of access requests in watches and plugin data. */
export const KIND_ACCESS_REQUEST = "access_request";
/** Resource kind of access monitoring rules in watches. */
export const KIND_ACCESS_MONITORING_RULE = "access_monitoring_rule";
/** Go's zero `time.Time`: how Teleport encodes an unset non-nullable timestamp. */
export const ZERO_TIME_SECONDS = -62135596800;

/** The RPCs the fake serves, by method name. */
export type TeleportMethod =
  | "Ping"
  | "WatchEvents"
  | "ListAccessRequests"
  | "GetAccessRequestsV2"
  | "GetPluginData"
  | "UpdatePluginData"
  | "ListAccessMonitoringRulesWithFilter";

export interface TeleportTestServerOptions {
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

interface StoredRequest {
  seq: number;
  createdMs: number;
  value: PbAccessRequest;
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

  advancedAccessWorkflows: boolean;
  proxyPublicAddr: string;
  allowAccessMonitoringRules: boolean;
  listPageSize: number;
  implementListAccessRequests: boolean;

  #port: number;
  #server: grpc.Server | undefined;
  #closed = false;
  #refusing = false;
  #now: () => Date;
  #keyType: KeyType;
  #seq = 0;
  #requests = new Map<string, StoredRequest>();
  /** Request id → plugin name → data. Kept after the request is deleted, as Teleport does. */
  #pluginData = new Map<string, Map<string, Record<string, string>>>();
  #rules = new Map<string, PbAccessMonitoringRule>();
  #watchers = new Set<Watcher>();
  #calls = new Map<TeleportMethod, number>();
  #injected = new Map<TeleportMethod, { status: InjectedStatus; times: number }>();

  private constructor(opts: TeleportTestServerOptions, ca: Pem, serverCert: Pem) {
    this.clusterName = opts.clusterName ?? "teleport.example.com";
    this.serverVersion = opts.serverVersion ?? "17.4.8";
    this.advancedAccessWorkflows = opts.advancedAccessWorkflows ?? true;
    this.proxyPublicAddr = opts.proxyPublicAddr ?? "teleport.example.com:443";
    this.allowAccessMonitoringRules = opts.allowAccessMonitoringRules ?? true;
    this.listPageSize = opts.listPageSize ?? 2;
    this.implementListAccessRequests = opts.implementListAccessRequests ?? true;
    this.#port = opts.port ?? 0;
    this.#now = opts.now ?? (() => new Date());
    this.#keyType = opts.keyType ?? "rsa";
    this.ca = ca;
    this.serverCert = serverCert;
  }

  /** Makes the PKI and starts serving on 127.0.0.1. */
  static async start(opts: TeleportTestServerOptions = {}): Promise<TeleportTestServer> {
    const keyType = opts.keyType ?? "rsa";
    const ca = opts.ca ?? await makeCa(opts.clusterName ?? "teleport.example.com", { keyType });
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
    if (this.#requests.has(id)) throw new Error(`Access request "${id}" already exists`);
    const created = o.created ?? this.#now();
    const expires = o.expires ?? new Date(created.getTime() + DEFAULT_REQUEST_TTL_MS);
    const resources: PbResourceId[] = (o.requestedResources ?? []).map((r) => ({
      ClusterName: r.clusterName ?? this.clusterName,
      Kind: r.kind,
      Name: r.name,
      SubResourceName: r.subResourceName ?? "",
    }));
    const value: PbAccessRequest = {
      Kind: KIND_ACCESS_REQUEST,
      Version: "v3",
      Metadata: {
        Name: id,
        Namespace: "default",
        Expires: timestamp(expires),
        Revision: crypto.randomUUID(),
      },
      Spec: {
        User: o.user,
        Roles: [...o.roles],
        State: "PENDING",
        Created: timestamp(created),
        Expires: timestamp(expires),
        RequestReason: o.reason ?? "",
        SuggestedReviewers: [...(o.suggestedReviewers ?? [])],
        RequestedResourceIDs: resources,
        LoginHint: o.loginHint ?? "",
        MaxDuration: o.maxDuration ? timestamp(o.maxDuration) : zeroTime(),
        SessionTTL: o.sessionTtl ? timestamp(o.sessionTtl) : zeroTime(),
        ...(o.systemAnnotations ? { SystemAnnotations: labelValues(o.systemAnnotations) } : {}),
      },
    };
    this.#requests.set(id, { seq: this.#seq++, createdMs: created.getTime(), value });
    this.#emitRequestPut(value);
    return structuredClone(value);
  }

  /** The stored request (a copy), or undefined. */
  request(id: string): PbAccessRequest | undefined {
    const stored = this.#requests.get(id);
    return stored && structuredClone(stored.value);
  }

  /** Ids of the stored requests, oldest first. */
  requestIds(): string[] {
    return this.#sortedRequests(false).map((r) => r.value.Metadata?.Name ?? "");
  }

  /** Appends a review (optionally resolving the request) and emits PUT. */
  review(id: string, o: ReviewOptions): PbAccessRequest {
    const req = this.#mustRequest(id);
    const spec = req.Spec ??= {};
    const review: PbAccessReview = {
      Author: o.author,
      Roles: [...(o.roles ?? [])],
      ProposedState: o.proposedState,
      Reason: o.reason ?? "",
      Created: timestamp(this.#now()),
    };
    spec.Reviews = [...(spec.Reviews ?? []), review];
    if (o.resolve) {
      spec.State = o.proposedState;
      spec.ResolveReason = o.reason ?? "";
    }
    return this.#touch(req);
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
    const req = this.#mustRequest(id);
    if (accessList) {
      (req.Spec ??= {}).accessList = { Name: accessList.name, Title: accessList.title };
    }
    return this.#resolve(id, "PROMOTED", reason);
  }

  /** Deletes the request and emits DELETE; its plugin data stays, as in Teleport. */
  deleteRequest(id: string): void {
    if (!this.#requests.delete(id)) throw new Error(`No access request "${id}"`);
    this.#emit(KIND_ACCESS_REQUEST, {
      Type: "DELETE",
      ResourceHeader: {
        Kind: KIND_ACCESS_REQUEST,
        Version: "v3",
        Metadata: { Name: id, Namespace: "default" },
      },
    });
  }

  /** Creates or replaces an access monitoring rule and emits PUT. */
  putRule(input: RuleInput): PbAccessMonitoringRule {
    const rule: PbAccessMonitoringRule = {
      metadata: { name: input.name, revision: crypto.randomUUID() },
      kind: KIND_ACCESS_MONITORING_RULE,
      version: "v1",
      spec: {
        subjects: [...(input.subjects ?? [KIND_ACCESS_REQUEST])],
        states: [...(input.states ?? [])],
        condition: input.condition ?? "",
        ...(input.notification
          ? {
            notification: {
              name: input.notification.name,
              recipients: [...input.notification.recipients],
            },
          }
          : {}),
        desired_state: input.desiredState ?? "",
      },
    };
    this.#rules.set(input.name, rule);
    this.#emit(KIND_ACCESS_MONITORING_RULE, {
      Type: "PUT",
      AccessMonitoringRule: structuredClone(rule),
    });
    return structuredClone(rule);
  }

  /** Deletes an access monitoring rule and emits DELETE. */
  deleteRule(name: string): void {
    if (!this.#rules.delete(name)) throw new Error(`No access monitoring rule "${name}"`);
    this.#emit(KIND_ACCESS_MONITORING_RULE, {
      Type: "DELETE",
      ResourceHeader: {
        Kind: KIND_ACCESS_MONITORING_RULE,
        Version: "v1",
        Metadata: { Name: name },
      },
    });
  }

  /** The data `plugin` stored on request `id` (a copy), or undefined. */
  pluginData(id: string, plugin = "email"): Record<string, string> | undefined {
    const data = this.#pluginData.get(id)?.get(plugin);
    return data && { ...data };
  }

  /** Replaces `plugin`'s data on `id` (no checks, no request needed); `{}` removes it. */
  setPluginData(id: string, data: Record<string, string>, plugin = "email"): void {
    const entries = this.#pluginData.get(id) ?? new Map<string, Record<string, string>>();
    const clean = Object.fromEntries(Object.entries(data).filter(([, v]) => v !== ""));
    if (Object.keys(clean).length === 0) entries.delete(plugin);
    else entries.set(plugin, clean);
    this.#pluginData.set(id, entries);
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
          this.#sortedRequests(false)
            .filter((r) => matchesFilter(r.value, filter))
            .map((r) => structuredClone(r.value)),
      ),
      GetPluginData: this.#unary(
        "GetPluginData",
        "proto.PluginDataSeq",
        (filter: PbPluginDataFilter) => ({ PluginData: this.#getPluginData(filter) }),
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

  #emitRequestPut(value: PbAccessRequest): void {
    this.#emit(KIND_ACCESS_REQUEST, { Type: "PUT", AccessRequest: value });
  }

  #endWatcher(w: Watcher, status: InjectedStatus): void {
    this.#watchers.delete(w);
    if (w.call.writable) w.call.emit("error", status);
  }

  #mustRequest(id: string): PbAccessRequest {
    const stored = this.#requests.get(id);
    if (!stored) throw new Error(`No access request "${id}"`);
    return stored.value;
  }

  #touch(req: PbAccessRequest): PbAccessRequest {
    (req.Metadata ??= {}).Revision = crypto.randomUUID();
    this.#emitRequestPut(req);
    return structuredClone(req);
  }

  #resolve(id: string, state: PbRequestState, reason: string): PbAccessRequest {
    const req = this.#mustRequest(id);
    const spec = req.Spec ??= {};
    spec.State = state;
    spec.ResolveReason = reason;
    return this.#touch(req);
  }

  #sortedRequests(descending: boolean): StoredRequest[] {
    const all = [...this.#requests.values()].sort((a, b) =>
      a.createdMs - b.createdMs || a.seq - b.seq
    );
    return descending ? all.reverse() : all;
  }

  #listAccessRequests(req: PbListAccessRequestsRequest) {
    if (!this.implementListAccessRequests) {
      throw statusError(
        grpc.status.UNIMPLEMENTED,
        `unknown method ListAccessRequests for service ${AUTH_SERVICE}`,
      );
    }
    const descending = req.Descending === true;
    const matching = this.#sortedRequests(descending).filter((r) =>
      matchesFilter(r.value, req.Filter ?? {})
    );
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
      AccessRequests: page.map((r) => structuredClone(r.value)),
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
    const ids = filter.Resource ? [filter.Resource] : [...this.#pluginData.keys()];
    const out: PbPluginData[] = [];
    for (const id of ids) {
      const entries = this.#pluginData.get(id);
      if (!entries) continue;
      // Teleport's PluginDataFilter.Match: the plugin must have an entry; every entry is returned.
      if (filter.Plugin && !entries.has(filter.Plugin)) continue;
      out.push({
        Kind: "plugin_data",
        SubKind: KIND_ACCESS_REQUEST,
        Version: "v3",
        Metadata: { Name: id, Namespace: "default" },
        Spec: {
          Entries: Object.fromEntries(
            [...entries].map(([plugin, data]) => [plugin, { Data: { ...data } }]),
          ),
        },
      });
    }
    return out;
  }

  /** Teleport's `updateAccessRequestPluginData` and `PluginDataEntry.Update`. */
  #updatePluginData(p: PbPluginDataUpdateParams): void {
    if (p.Kind !== KIND_ACCESS_REQUEST) {
      throw statusError(
        grpc.status.INVALID_ARGUMENT,
        `unsupported resource kind ${JSON.stringify(p.Kind ?? "")}`,
      );
    }
    const id = p.Resource ?? "";
    const plugin = p.Plugin ?? "";
    if (id === "" || plugin === "") {
      throw statusError(grpc.status.INVALID_ARGUMENT, "missing resource or plugin name");
    }
    // The data object outlives its request; only creating one needs the request.
    let entries = this.#pluginData.get(id);
    if (!entries && !this.#requests.has(id)) {
      throw statusError(grpc.status.NOT_FOUND, `access request ${JSON.stringify(id)} not found`);
    }
    entries ??= new Map();
    const current = entries.get(plugin) ?? {};
    for (const [key, want] of Object.entries(p.Expect ?? {})) {
      if ((current[key] ?? "") !== want) {
        throw statusError(
          grpc.status.FAILED_PRECONDITION,
          `expectations not met for field ${JSON.stringify(key)}`,
        );
      }
    }
    const next = { ...current };
    for (const [key, value] of Object.entries(p.Set ?? {})) {
      if (value === "") delete next[key];
      else next[key] = value;
    }
    if (Object.keys(next).length === 0) entries.delete(plugin);
    else entries.set(plugin, next);
    this.#pluginData.set(id, entries);
  }

  #listRules(req: PbListAccessMonitoringRulesRequest) {
    if (!this.allowAccessMonitoringRules) {
      throw statusError(
        grpc.status.PERMISSION_DENIED,
        `access denied to perform action "list" on "${KIND_ACCESS_MONITORING_RULE}"`,
      );
    }
    const subjects = req.subjects ?? [];
    const matching = [...this.#rules.values()]
      .filter((r) => {
        const spec = r.spec ?? {};
        if (req.notification_name && spec.notification?.name !== req.notification_name) {
          return false;
        }
        return subjects.every((s) => (spec.subjects ?? []).includes(s));
      })
      .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
    let start = 0;
    if (req.page_token) {
      start = matching.findIndex((r) => (r.metadata?.name ?? "") >= (req.page_token ?? ""));
      if (start < 0) start = matching.length;
    }
    const size = req.page_size && req.page_size > 0
      ? Math.min(req.page_size, this.listPageSize)
      : this.listPageSize;
    const next = matching[start + size];
    return {
      rules: matching.slice(start, start + size).map((r) => structuredClone(r)),
      next_page_token: next?.metadata?.name ?? "",
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

function labelValues(m: Record<string, string[]>) {
  return {
    Values: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { Values: [...v] }])),
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

function matchesFilter(req: PbAccessRequest, f: PbAccessRequestFilter): boolean {
  if (f.ID && req.Metadata?.Name !== f.ID) return false;
  if (f.User && req.Spec?.User !== f.User) return false;
  if (f.State !== undefined && f.State !== "NONE" && f.State !== 0 && req.Spec?.State !== f.State) {
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

function comparePageKey(r: StoredRequest, key: { createdMs: number; seq: number }): number {
  return r.createdMs - key.createdMs || r.seq - key.seq;
}

class StatusError extends Error {
  constructor(readonly code: grpc.status, details: string) {
    super(details);
    this.name = "StatusError";
  }
}

function statusError(code: grpc.status, details: string): StatusError {
  return new StatusError(code, details);
}

function toStatus(err: unknown): InjectedStatus {
  if (err instanceof StatusError) return { code: err.code, details: err.message };
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
