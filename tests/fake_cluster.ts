/**
 * The one in-memory Teleport cluster of the tests: access requests, plugin
 * data with Teleport's exact compare-and-swap, access monitoring rules and
 * users, with a change feed for watch streams. `TeleportTestServer` serves it
 * over gRPC (tests/teleport_server.ts); {@linkcode FakeTeleportClient} serves
 * it to unit tests as a `TeleportClient` that rejects as the real client does.
 *
 * The store answers refusals as Teleport's Auth Service does, with a gRPC
 * status ({@linkcode StatusError}): the server sends it as is and the fake
 * client classifies it with the product's `fromGrpcError`, so both speak the
 * same codes and words. Test-only: never imported by the product.
 */

import { status } from "@grpc/grpc-js";
import { CompareFailedError, fromGrpcError } from "../src/teleport/errors.ts";
import { KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST } from "../src/teleport/convert.ts";
import type {
  AccessMonitoringRule,
  AccessRequest,
  PingInfo,
  PluginData,
  TeleportClient,
  TeleportUser,
  WatchEvent,
} from "../src/teleport/types.ts";

/** The plugin name the fake client reads and writes under (the real client's `PLUGIN_NAME`). */
export const FAKE_PLUGIN_NAME = "email";

/** What `Ping` answers unless told otherwise (the gRPC test server's defaults too). */
export const FAKE_PING: PingInfo = {
  clusterName: "teleport.example.com",
  serverVersion: "17.4.8",
  advancedAccessWorkflows: true,
  proxyPublicAddr: "teleport.example.com:443",
};

export { newAccessRequest } from "./requests.ts";

/** A gRPC status the cluster refuses with, worded as grpc-js words a received one. */
export class StatusError extends Error {
  readonly code: status;
  readonly details: string;

  constructor(code: status, details: string) {
    super(`${code} ${status[code]}: ${details}`);
    this.name = "StatusError";
    this.code = code;
    this.details = details;
  }
}

/** An access monitoring rule as stored: the domain rule and the field the notifier ignores. */
export interface FakeRule extends AccessMonitoringRule {
  readonly desiredState: string;
}

/** One change, as a watch stream carries it. */
export type ClusterChange =
  | { readonly type: "put"; readonly kind: "access_request"; readonly request: AccessRequest }
  | { readonly type: "put"; readonly kind: "access_monitoring_rule"; readonly rule: FakeRule }
  | { readonly type: "delete"; readonly kind: string; readonly name: string };

/** An access request with its place in creation order (the server's page keys). */
export interface OrderedRequest {
  readonly request: AccessRequest;
  readonly createdMs: number;
  readonly seq: number;
}

/** One request's plugin data object: every plugin's entry. */
export interface PluginDataItem {
  readonly requestId: string;
  readonly entries: Record<string, Record<string, string>>;
}

/** Plugin name → data, per request id. */
type PluginDataStore = Map<string, Map<string, Record<string, string>>>;

/**
 * The cluster's state. Changing it through the methods emits the change to
 * subscribers (watch streams); writing the public maps directly changes it
 * silently, which unit tests that feed events by hand may prefer.
 */
export class FakeCluster {
  /** Access requests by id, in insertion order. */
  readonly requests = new Map<string, AccessRequest>();
  /** Access monitoring rules by name. */
  readonly rules = new Map<string, FakeRule>();
  /** Users by name → traits. */
  readonly users = new Map<string, Record<string, string[]>>();
  /**
   * Largest plugin-data record (JSON bytes of one plugin's map) the backend
   * takes, as real ones cap an item (DynamoDB 400 KB); unlimited when unset.
   */
  maxPluginDataBytes: number | undefined;

  /**
   * Request id → plugin name → data. Outlives the request, as Teleport's
   * plugin data object does; a plugin's entry goes when its last key does.
   */
  readonly #pluginData: PluginDataStore = new Map();
  readonly #seqOf = new Map<string, number>();
  #nextSeq = 0;
  readonly #listeners = new Set<(change: ClusterChange) => void>();

  /** Calls `listener` with every change from now on; returns the unsubscribe. */
  subscribe(listener: (change: ClusterChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(change: ClusterChange): void {
    for (const listener of [...this.#listeners]) listener(change);
  }

  // -------------------------------------------------------------------------
  // Access requests

  /** Creates or replaces a request with a new revision and emits PUT; returns it as stored. */
  putRequest(request: AccessRequest): AccessRequest {
    if (!this.requests.has(request.id)) this.#seqOf.set(request.id, this.#nextSeq++);
    const stored: AccessRequest = { ...request, revision: crypto.randomUUID() };
    this.requests.set(stored.id, stored);
    this.#emit({ type: "put", kind: KIND_ACCESS_REQUEST, request: stored });
    return stored;
  }

  /** Replaces request `id` by `change(it)` (see `putRequest`); throws if there is none. */
  updateRequest(id: string, change: (request: AccessRequest) => AccessRequest): AccessRequest {
    const request = this.requests.get(id);
    if (request === undefined) throw new Error(`No access request "${id}"`);
    return this.putRequest({ ...change(request), id });
  }

  /** Deletes the request and emits DELETE; its plugin data stays, as in Teleport. */
  deleteRequest(id: string): void {
    if (!this.requests.delete(id)) throw new Error(`No access request "${id}"`);
    this.#emit({ type: "delete", kind: KIND_ACCESS_REQUEST, name: id });
  }

  /** The requests in creation order: created time, then insertion. */
  creationOrder(): OrderedRequest[] {
    const out: OrderedRequest[] = [];
    for (const request of this.requests.values()) {
      // Requests written into the map directly get their place when first seen here.
      let seq = this.#seqOf.get(request.id);
      if (seq === undefined) this.#seqOf.set(request.id, seq = this.#nextSeq++);
      out.push({ request, createdMs: request.created?.getTime() ?? 0, seq });
    }
    return out.sort((a, b) => a.createdMs - b.createdMs || a.seq - b.seq);
  }

  // -------------------------------------------------------------------------
  // Plugin data

  /**
   * Teleport's `UpdatePluginData` on an access request (`PluginDataV3.Update`):
   * every `expect` key must equal the stored value (a missing key counts as
   * ""), else FAILED_PRECONDITION and nothing changes; then each `set` key is
   * written, "" deleting it. A request without a data object must exist
   * (NOT_FOUND); an existing data object can be updated after its request is
   * gone.
   */
  updatePluginData(
    requestId: string,
    set: PluginData,
    expect: PluginData,
    plugin = FAKE_PLUGIN_NAME,
  ): void {
    if (requestId === "" || plugin === "") {
      throw new StatusError(status.INVALID_ARGUMENT, "missing resource or plugin name");
    }
    const entries = this.#pluginData.get(requestId) ?? new Map<string, Record<string, string>>();
    if (!this.#pluginData.has(requestId) && !this.requests.has(requestId)) {
      throw new StatusError(
        status.NOT_FOUND,
        `access request ${JSON.stringify(requestId)} not found`,
      );
    }
    const current = entries.get(plugin) ?? {};
    for (const [key, want] of Object.entries(expect)) {
      if ((current[key] ?? "") !== want) {
        throw new StatusError(
          status.FAILED_PRECONDITION,
          `expectations not met for field ${JSON.stringify(key)}`,
        );
      }
    }
    const next = { ...current };
    for (const [key, value] of Object.entries(set)) {
      if (value === "") delete next[key];
      else next[key] = value;
    }
    const size = new TextEncoder().encode(JSON.stringify(next)).length;
    if (this.maxPluginDataBytes !== undefined && size > this.maxPluginDataBytes) {
      // DynamoDB's wording; Teleport passes the backend's refusal on.
      throw new StatusError(
        status.INVALID_ARGUMENT,
        `Item size has exceeded the maximum allowed size (${size} > ${this.maxPluginDataBytes} bytes)`,
      );
    }
    if (Object.keys(next).length === 0) entries.delete(plugin);
    else entries.set(plugin, next);
    this.#pluginData.set(requestId, entries);
  }

  /**
   * Teleport's `GetPluginData` on access requests: the data object of
   * `resource` (every one when absent), only those with an entry of
   * `plugin` when given, each with every plugin's entry (copies).
   */
  findPluginData(filter: { resource?: string; plugin?: string } = {}): PluginDataItem[] {
    const ids = filter.resource ? [filter.resource] : [...this.#pluginData.keys()];
    const out: PluginDataItem[] = [];
    for (const requestId of ids) {
      const entries = this.#pluginData.get(requestId);
      if (!entries) continue;
      if (filter.plugin && !entries.has(filter.plugin)) continue;
      const copy = Object.fromEntries([...entries].map(([name, data]) => [name, { ...data }]));
      out.push({ requestId, entries: copy });
    }
    return out;
  }

  /** The data `plugin` stored on request `id` (a copy), or undefined. */
  getPluginData(id: string, plugin = FAKE_PLUGIN_NAME): Record<string, string> | undefined {
    const data = this.#pluginData.get(id)?.get(plugin);
    return data && { ...data };
  }

  /** Replaces `plugin`'s data on `id` (no checks, no request needed; "" values dropped); `{}` removes it. */
  setPluginData(id: string, data: PluginData, plugin = FAKE_PLUGIN_NAME): void {
    const entries = this.#pluginData.get(id) ?? new Map<string, Record<string, string>>();
    const clean = Object.fromEntries(Object.entries(data).filter(([, v]) => v !== ""));
    if (Object.keys(clean).length === 0) entries.delete(plugin);
    else entries.set(plugin, clean);
    this.#pluginData.set(id, entries);
  }

  /**
   * `plugin`'s data by request id as a live `Map`-like table: what a unit
   * test reads and pokes (writes are unchecked and stored as given).
   */
  pluginData(plugin = FAKE_PLUGIN_NAME): PluginDataTable {
    return new PluginDataTable(this.#pluginData, plugin);
  }

  // -------------------------------------------------------------------------
  // Access monitoring rules

  /** Creates or replaces a rule with a new revision and emits PUT; returns it as stored. */
  putRule(rule: Omit<FakeRule, "revision">): FakeRule {
    const stored: FakeRule = { ...rule, revision: crypto.randomUUID() };
    this.rules.set(stored.name, stored);
    this.#emit({ type: "put", kind: KIND_ACCESS_MONITORING_RULE, rule: stored });
    return stored;
  }

  /** Deletes a rule and emits DELETE. */
  /** Teleport's `GetUser`: the user's traits, NOT_FOUND when there is no such user. */
  getUser(name: string): { name: string; traits: Record<string, string[]> } {
    const traits = this.users.get(name);
    if (traits === undefined) {
      throw new StatusError(status.NOT_FOUND, `user ${JSON.stringify(name)} is not found`);
    }
    return { name, traits: structuredClone(traits) };
  }

  deleteRule(name: string): void {
    if (!this.rules.delete(name)) throw new Error(`No access monitoring rule "${name}"`);
    this.#emit({ type: "delete", kind: KIND_ACCESS_MONITORING_RULE, name });
  }

  /**
   * `ListAccessMonitoringRulesWithFilter` without paging: the rules having
   * every one of `subjects` and, when given, notifying `notificationName`,
   * by name.
   */
  listRules(filter: { subjects?: readonly string[]; notificationName?: string } = {}): FakeRule[] {
    const subjects = filter.subjects ?? [];
    return [...this.rules.values()]
      .filter((r) =>
        (!filter.notificationName || r.notification.name === filter.notificationName) &&
        subjects.every((s) => r.subjects.includes(s))
      )
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}

/** One plugin's data by request id, over the cluster's store; see `FakeCluster.pluginData`. */
export class PluginDataTable implements Iterable<[string, Record<string, string>]> {
  readonly #store: PluginDataStore;
  readonly #plugin: string;

  constructor(store: PluginDataStore, plugin: string) {
    this.#store = store;
    this.#plugin = plugin;
  }

  /** The stored record itself (not a copy), or undefined. */
  get(requestId: string): Record<string, string> | undefined {
    return this.#store.get(requestId)?.get(this.#plugin);
  }

  has(requestId: string): boolean {
    return this.get(requestId) !== undefined;
  }

  /** Stores a copy of `data` as the plugin's entry on `requestId`, unchecked. */
  set(requestId: string, data: Record<string, string>): this {
    const entries = this.#store.get(requestId) ?? new Map<string, Record<string, string>>();
    entries.set(this.#plugin, { ...data });
    this.#store.set(requestId, entries);
    return this;
  }

  /** Removes the plugin's entry; the request's data object stays. */
  delete(requestId: string): boolean {
    return this.#store.get(requestId)?.delete(this.#plugin) ?? false;
  }

  get size(): number {
    return [...this.keys()].length;
  }

  *entries(): IterableIterator<[string, Record<string, string>]> {
    for (const [requestId, entries] of this.#store) {
      const data = entries.get(this.#plugin);
      if (data !== undefined) yield [requestId, data];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [requestId] of this.entries()) yield requestId;
  }

  *values(): IterableIterator<Record<string, string>> {
    for (const [, data] of this.entries()) yield data;
  }

  [Symbol.iterator](): IterableIterator<[string, Record<string, string>]> {
    return this.entries();
  }
}

// ---------------------------------------------------------------------------
// The client

/** The `TeleportClient` methods, as hooks and counters name them. */
export type FakeMethod = Exclude<keyof TeleportClient, "close">;

/** The RPC each method makes in the real client: the name its errors carry. */
const RPC_OF: Readonly<Record<FakeMethod, string>> = {
  ping: "Ping",
  watch: "WatchEvents",
  listAccessRequests: "ListAccessRequests",
  getPluginData: "GetPluginData",
  updatePluginData: "UpdatePluginData",
  listPluginData: "GetPluginData",
  listAccessMonitoringRules: "ListAccessMonitoringRulesWithFilter",
  getUser: "GetUser",
};

/** One call the fake client received (arguments copied). */
export interface FakeCall {
  readonly method: FakeMethod;
  /** How many calls of `method` there have been, this one included. */
  readonly count: number;
  readonly requestId?: string;
  readonly set?: PluginData;
  readonly expect?: PluginData;
}

/** A failure to inject: an error thrown as is, or a gRPC status the real client would classify. */
export type FakeFailure = Error | { readonly code: status; readonly details?: string };

export interface FakeTeleportClientOptions {
  /** What `ping` answers; default {@linkcode FAKE_PING}. */
  readonly ping?: Partial<PingInfo>;
  /** Plugin name of the data read and written; default {@linkcode FAKE_PLUGIN_NAME}. */
  readonly plugin?: string;
}

interface OpenWatch {
  end(error: unknown): void;
}

/**
 * A `TeleportClient` straight over a {@linkcode FakeCluster}, for unit tests.
 * Refusals are what the real client rejects with (`TeleportError` of the
 * status's kind, `CompareFailedError` naming the request); an aborted signal
 * rejects with its reason. Calls act synchronously when called unless a
 * hook is async, so a test sees their effect at once.
 *
 * Hooks: `calls` / `callCount` / `updates` count and record; `failNext`
 * fails calls; `beforeCall` runs inside every call before it acts (a racing
 * writer); `dropWatches` ends open watch streams.
 */
export class FakeTeleportClient implements TeleportClient {
  readonly cluster: FakeCluster;
  /** Every call, oldest first (aborted-before-sending calls are not made, so not recorded). */
  readonly calls: FakeCall[] = [];
  /**
   * Runs inside every call after it is recorded and passed `failNext`, before
   * it acts; what it throws, the call rejects with (as `failNext` would).
   */
  beforeCall: ((call: FakeCall) => void | Promise<void>) | undefined;

  readonly #ping: PingInfo;
  readonly #plugin: string;
  readonly #failures = new Map<FakeMethod, { failure: FakeFailure; times: number }>();
  readonly #watches = new Set<OpenWatch>();

  constructor(cluster: FakeCluster = new FakeCluster(), opts: FakeTeleportClientOptions = {}) {
    this.cluster = cluster;
    this.#ping = { ...FAKE_PING, ...opts.ping };
    this.#plugin = opts.plugin ?? FAKE_PLUGIN_NAME;
  }

  /** The cluster's access requests (written directly: no watch event). */
  get requests(): Map<string, AccessRequest> {
    return this.cluster.requests;
  }

  /** This client's plugin data by request id, live (written directly: unchecked). */
  get data(): PluginDataTable {
    return this.cluster.pluginData(this.#plugin);
  }

  /** The `updatePluginData` calls, oldest first. */
  get updates(): { requestId: string; set: PluginData; expect: PluginData }[] {
    return this.calls.flatMap((c) =>
      c.method === "updatePluginData"
        ? [{ requestId: c.requestId ?? "", set: c.set ?? {}, expect: c.expect ?? {} }]
        : []
    );
  }

  /** How many times `method` was called (failed calls included). */
  callCount(method: FakeMethod): number {
    return this.calls.filter((c) => c.method === method).length;
  }

  /** The next `times` calls of `method` fail with `failure` (after being recorded). */
  failNext(method: FakeMethod, failure: FakeFailure, times = 1): void {
    this.#failures.set(method, { failure, times });
  }

  /** Ends every open watch stream as a lost connection does (a transient `TeleportError`). */
  dropWatches(details = "watcher closed by the fake cluster"): void {
    const error = fromGrpcError(new StatusError(status.UNAVAILABLE, details), RPC_OF.watch);
    for (const w of [...this.#watches]) w.end(error);
  }

  /**
   * Records the call, then fails it or runs `beforeCall`. Rejects with the
   * signal's reason when aborted before or during that, as the real client does.
   */
  async #enter(
    call: { method: FakeMethod } & Omit<FakeCall, "method" | "count">,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    signal?.throwIfAborted();
    const recorded: FakeCall = { ...call, count: this.callCount(call.method) + 1 };
    this.calls.push(recorded);
    const injected = this.#failures.get(call.method);
    if (injected) {
      if (--injected.times <= 0) this.#failures.delete(call.method);
      throw this.#asClientError(call.method, injected.failure, call.requestId);
    }
    try {
      const pending = this.beforeCall?.(recorded);
      if (pending) await pending;
    } catch (error) {
      throw this.#asClientError(call.method, error, call.requestId);
    }
    signal?.throwIfAborted();
  }

  /**
   * What the real client rejects with when the server answers `error` (see
   * `GrpcTeleportClient`): a status is classified, anything else passes.
   */
  #asClientError(method: FakeMethod, error: unknown, requestId?: string): unknown {
    const answer = !(error instanceof Error) && isStatus(error)
      ? new StatusError(error.code, error.details ?? "")
      : error;
    const wrapped = fromGrpcError(answer, RPC_OF[method]);
    if (method === "updatePluginData" && wrapped instanceof CompareFailedError) {
      return new CompareFailedError(
        `Plugin data of request "${requestId}" changed: ${wrapped.details}`,
        { cause: wrapped, details: wrapped.details },
      );
    }
    return wrapped;
  }

  async ping(signal?: AbortSignal): Promise<PingInfo> {
    await this.#enter({ method: "ping" }, signal);
    return { ...this.#ping };
  }

  async *watch(kinds: readonly string[], signal?: AbortSignal): AsyncIterable<WatchEvent> {
    await this.#enter({ method: "watch" }, signal);
    const queue: WatchEvent[] = [];
    let ended: { error: unknown } | undefined;
    let wake: (() => void) | undefined;
    const watch: OpenWatch = {
      end: (error) => {
        ended ??= { error };
        wake?.();
      },
    };
    const unsubscribe = this.cluster.subscribe((change) => {
      if (!kinds.includes(change.kind)) return;
      queue.push(
        change.type === "put" && change.kind === KIND_ACCESS_MONITORING_RULE
          ? { ...change, rule: domainRule(change.rule) }
          : change,
      );
      wake?.();
    });
    const onAbort = () => watch.end(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#watches.add(watch);
    try {
      yield { type: "init", acceptedKinds: [...kinds] };
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (ended) throw ended.error;
        await new Promise<void>((resolve) => wake = resolve);
        wake = undefined;
      }
    } finally {
      this.#watches.delete(watch);
      signal?.removeEventListener("abort", onAbort);
      unsubscribe();
    }
  }

  async listAccessRequests(
    filter: { id?: string } = {},
    signal?: AbortSignal,
  ): Promise<AccessRequest[]> {
    await this.#enter({ method: "listAccessRequests" }, signal);
    return this.cluster.creationOrder()
      .map((r) => r.request)
      .filter((r) => !filter.id || r.id === filter.id);
  }

  async getPluginData(requestId: string, signal?: AbortSignal): Promise<PluginData | undefined> {
    await this.#enter({ method: "getPluginData", requestId }, signal);
    const items = this.cluster.findPluginData({ resource: requestId, plugin: this.#plugin });
    return items[0]?.entries[this.#plugin];
  }

  async updatePluginData(
    requestId: string,
    set: PluginData,
    expect: PluginData,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.#enter(
      { method: "updatePluginData", requestId, set: { ...set }, expect: { ...expect } },
      signal,
    );
    try {
      this.cluster.updatePluginData(requestId, set, expect, this.#plugin);
    } catch (error) {
      throw this.#asClientError("updatePluginData", error, requestId);
    }
  }

  async listPluginData(signal?: AbortSignal): Promise<{ requestId: string; data: PluginData }[]> {
    await this.#enter({ method: "listPluginData" }, signal);
    return this.cluster.findPluginData({ plugin: this.#plugin }).flatMap(
      ({ requestId, entries }) => {
        const data = entries[this.#plugin];
        return data === undefined ? [] : [{ requestId, data }];
      },
    );
  }

  async listAccessMonitoringRules(signal?: AbortSignal): Promise<AccessMonitoringRule[]> {
    await this.#enter({ method: "listAccessMonitoringRules" }, signal);
    return this.cluster
      .listRules({ subjects: [KIND_ACCESS_REQUEST], notificationName: this.#plugin })
      .map(domainRule);
  }

  async getUser(name: string, signal?: AbortSignal): Promise<TeleportUser> {
    await this.#enter({ method: "getUser" }, signal);
    try {
      const user = this.cluster.getUser(name);
      return { name: user.name, roles: [], traits: user.traits };
    } catch (error) {
      throw this.#asClientError("getUser", error, undefined);
    }
  }

  /** Ends open watch streams as the real client's close does (a cancelled call). */
  close(): void {
    const error = fromGrpcError(
      new StatusError(status.CANCELLED, "Cancelled on client"),
      RPC_OF.watch,
    );
    for (const w of [...this.#watches]) w.end(error);
  }
}

function isStatus(value: unknown): value is { code: status; details?: string } {
  return typeof (value as { code?: unknown } | null)?.code === "number";
}

/** The rule as the notifier sees it. */
function domainRule(rule: FakeRule): AccessMonitoringRule {
  const { desiredState: _, ...domain } = rule;
  return domain;
}
