/**
 * Tests of the fake Teleport Auth Service, through a raw grpc-js client
 * built from our embedded proto (mutual TLS, server name
 * teleport.cluster.local), so what is checked is what goes over the wire.
 */

import * as grpc from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  decodeMessage,
  type PbAccessRequest,
  type PbEvent,
  type PbListAccessMonitoringRulesResponse,
  type PbListAccessRequestsResponse,
  type PbPingResponse,
  type PbPluginDataSeq,
  teleportProto,
} from "../src/teleport/proto.ts";
import { issueCert, makeCa, TELEPORT_SERVER_NAME } from "./pki.ts";
import { readWireVector } from "./fixtures/wire.ts";
import {
  type ClientIdentity,
  TeleportTestServer,
  type TeleportTestServerOptions,
  ZERO_TIME_SECONDS,
} from "./teleport_server.ts";

/** Upper bound of one test. */
const TEST_TIMEOUT_MS = 30_000;
/** Deadline of one RPC. */
const RPC_DEADLINE_MS = 5_000;
/** How long to wait for one watch event or status. */
const EVENT_WAIT_MS = 5_000;
/** Poll interval while waiting for stream events. */
const POLL_MS = 5;
type Callback = (err: grpc.ServiceError | null, value?: unknown) => void;
type UnaryMethod = (
  req: unknown,
  metadata: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: Callback,
) => grpc.ClientUnaryCall;
type StreamMethod = (req: unknown, opts?: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/** A raw client of both services on one identity. */
class RawClient {
  readonly auth: grpc.Client;
  readonly amr: grpc.Client;
  readonly #streams: grpc.ClientReadableStream<unknown>[] = [];

  constructor(addr: string, id: Pick<ClientIdentity, "key" | "cert" | "cas">) {
    const proto = teleportProto();
    const creds = grpc.credentials.createSsl(
      Buffer.from(id.cas.join("")),
      Buffer.from(id.key),
      Buffer.from(id.cert),
    );
    const options = {
      "grpc.ssl_target_name_override": TELEPORT_SERVER_NAME,
      // Reconnect at once after a restart instead of grpc-js's 1 s backoff.
      "grpc.initial_reconnect_backoff_ms": 50,
      "grpc.max_reconnect_backoff_ms": 200,
    };
    this.auth = new proto.AuthService(addr, creds, options);
    this.amr = new proto.AccessMonitoringRulesService(addr, creds, options);
  }

  /** Fails fast unless `waitForReady` (then waits for a connection up to the deadline). */
  unary<T>(
    method: string,
    req: unknown,
    client: grpc.Client = this.auth,
    waitForReady = false,
  ): Promise<T> {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    if (!fn) throw new Error(`No method ${method}`);
    return new Promise((resolve, reject) => {
      fn.call(
        client,
        req,
        // grpc-js reads waitForReady from the metadata's options.
        new grpc.Metadata({ waitForReady }),
        { deadline: Date.now() + RPC_DEADLINE_MS },
        (err, value) => err ? reject(err) : resolve(value as T),
      );
    });
  }

  stream<T>(method: string, req: unknown): StreamReader<T> {
    const fn = (this.auth as unknown as Record<string, StreamMethod>)[method];
    if (!fn) throw new Error(`No method ${method}`);
    const call = fn.call(this.auth, req);
    this.#streams.push(call);
    return new StreamReader<T>(call as grpc.ClientReadableStream<T>);
  }

  watch(kinds: string[], allowPartialSuccess = false): StreamReader<PbEvent> {
    return this.stream<PbEvent>("WatchEvents", {
      Kinds: kinds.map((Kind) => ({ Kind })),
      AllowPartialSuccess: allowPartialSuccess,
    });
  }

  ping(): Promise<PbPingResponse> {
    return this.unary<PbPingResponse>("Ping", {});
  }

  getPluginData(resource: string, plugin = "email"): Promise<PbPluginDataSeq> {
    return this.unary<PbPluginDataSeq>("GetPluginData", {
      Kind: "access_request",
      Resource: resource,
      Plugin: plugin,
    });
  }

  updatePluginData(
    resource: string,
    set: Record<string, string>,
    expect: Record<string, string> = {},
  ): Promise<unknown> {
    return this.unary("UpdatePluginData", {
      Kind: "access_request",
      Resource: resource,
      Plugin: "email",
      Set: set,
      Expect: expect,
    });
  }

  close(): void {
    for (const s of this.#streams) s.cancel();
    this.auth.close();
    this.amr.close();
  }
}

/** Collects a server stream's messages and its final status. */
class StreamReader<T> {
  readonly items: T[] = [];
  #read = 0;
  error: grpc.ServiceError | undefined;
  ended = false;

  constructor(call: grpc.ClientReadableStream<T>) {
    call.on("data", (item: T) => this.items.push(item));
    call.on("error", (err: grpc.ServiceError) => {
      this.error = err;
      this.ended = true;
    });
    call.on("end", () => this.ended = true);
  }

  async next(): Promise<T> {
    await until(() => this.items.length > this.#read || this.ended, "a stream message");
    const item = this.items[this.#read];
    if (item === undefined) {
      throw new Error(`Stream ended instead: ${this.error?.message ?? "OK"}`);
    }
    this.#read++;
    return item;
  }

  /** Every message until the stream ends. */
  async all(): Promise<T[]> {
    await until(() => this.ended, "the end of the stream");
    if (this.error) throw this.error;
    return this.items;
  }

  async status(): Promise<grpc.ServiceError> {
    await until(() => this.ended, "the stream's status");
    if (!this.error) throw new Error("Stream ended with OK");
    return this.error;
  }
}

async function until(done: () => boolean, what: string, ms = EVENT_WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Runs `fn` with a server and a client, bounded in time, tearing both down hard. */
function withServer(
  fn: (server: TeleportTestServer, client: RawClient) => Promise<void>,
  opts: TeleportTestServerOptions = {},
): () => Promise<void> {
  return async () => {
    const server = await TeleportTestServer.start(opts);
    const clients: RawClient[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const client = new RawClient(server.addr, await server.issueClientIdentity());
      clients.push(client);
      await Promise.race([
        fn(server, client),
        new Promise((_, reject) =>
          timer = setTimeout(() => reject(new Error("Test timed out")), TEST_TIMEOUT_MS)
        ),
      ]);
    } finally {
      clearTimeout(timer);
      for (const c of clients) c.close();
      server.close();
    }
  };
}

async function rejects(p: Promise<unknown>, code: grpc.status, details?: RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `code ${err.code} (${err.details}), want ${code}`);
    if (details) assert.match(err.details, details);
    return true;
  });
}

Deno.test(
  "Ping returns the cluster name, version, features and proxy address",
  withServer(async (server, client) => {
    const ping = await client.ping();
    assert.deepEqual(ping, {
      ClusterName: "teleport.example.com",
      ServerVersion: "17.4.8",
      ServerFeatures: { AccessControls: true, AdvancedAccessWorkflows: true },
      ProxyPublicAddr: "teleport.example.com:443",
    });
    assert.equal(server.callCount("Ping"), 1);
  }),
);

Deno.test(
  "Ping reflects the options",
  withServer(async (_server, client) => {
    const ping = await client.ping();
    assert.equal(ping.ClusterName, "other.example.org");
    assert.equal(ping.ServerVersion, "6.0.0");
    assert.equal(ping.ServerFeatures?.AdvancedAccessWorkflows, false);
    assert.equal(ping.ProxyPublicAddr, "");
  }, {
    clusterName: "other.example.org",
    serverVersion: "6.0.0",
    advancedAccessWorkflows: false,
    proxyPublicAddr: "",
  }),
);

Deno.test(
  "a watch gets INIT, then PUT (create), PUT (review, approve) and DELETE, in order",
  withServer(async (server, client) => {
    const watch = client.watch(["access_request"]);
    const init = await watch.next();
    assert.equal(init.Type, "INIT");
    assert.equal(init.Resource, undefined, "an old-style INIT carries no resource");
    assert.equal(server.watchersConnected, 1);

    const expires = new Date("2030-01-01T10:00:00.250Z");
    const created = server.createRequest({
      user: "alice@example.com",
      roles: ["editor", "dba"],
      reason: "hotfix",
      suggestedReviewers: ["bob@example.com"],
      requestedResources: [{ kind: "node", name: "db-1" }],
      expires,
    });
    const id = created.Metadata?.Name ?? "";
    assert.match(id, /^[0-9a-f-]{36}$/);
    server.review(id, { author: "bob@example.com", proposedState: "APPROVED", reason: "ok" });
    server.approve(id, "go ahead");
    server.deleteRequest(id);

    const put = await watch.next();
    assert.equal(put.Type, "PUT");
    assert.equal(put.Resource, "AccessRequest");
    const req = put.AccessRequest as PbAccessRequest;
    assert.equal(req.Kind, "access_request");
    assert.equal(req.Version, "v3");
    assert.equal(req.Metadata?.Name, id);
    assert.equal(req.Metadata?.Namespace, "default");
    assert.equal(req.Spec?.User, "alice@example.com");
    assert.deepEqual(req.Spec?.Roles, ["editor", "dba"]);
    assert.equal(req.Spec?.State, "PENDING");
    assert.equal(req.Spec?.RequestReason, "hotfix");
    assert.deepEqual(req.Spec?.SuggestedReviewers, ["bob@example.com"]);
    assert.deepEqual(req.Spec?.RequestedResourceIDs, [
      { ClusterName: "teleport.example.com", Kind: "node", Name: "db-1", SubResourceName: "" },
    ]);
    assert.deepEqual(req.Spec?.Expires, { seconds: 1893492000, nanos: 250_000_000 });
    assert.deepEqual(req.Spec?.MaxDuration, { seconds: ZERO_TIME_SECONDS, nanos: 0 });
    assert.ok(Number(req.Spec?.Created?.seconds) > 1_700_000_000);

    const reviewed = await watch.next();
    assert.equal(reviewed.AccessRequest?.Spec?.State, "PENDING");
    const review = reviewed.AccessRequest?.Spec?.Reviews?.[0];
    assert.equal(review?.Author, "bob@example.com");
    assert.equal(review?.ProposedState, "APPROVED");
    assert.equal(review?.Reason, "ok");
    assert.notEqual(reviewed.AccessRequest?.Metadata?.Revision, req.Metadata?.Revision);

    const approved = await watch.next();
    assert.equal(approved.Type, "PUT");
    assert.equal(approved.AccessRequest?.Spec?.State, "APPROVED");
    assert.equal(approved.AccessRequest?.Spec?.ResolveReason, "go ahead");
    assert.equal(approved.AccessRequest?.Spec?.Reviews?.length, 1);

    const deleted = await watch.next();
    assert.equal(deleted.Type, "DELETE");
    assert.equal(deleted.Resource, "ResourceHeader");
    assert.equal(deleted.ResourceHeader?.Kind, "access_request");
    assert.equal(deleted.ResourceHeader?.Metadata?.Name, id);
    assert.equal(watch.items.length, 5);

    client.close();
    await server.waitForWatchers(0);
  }),
);

Deno.test(
  "a watch gets only the kinds it asked for; DENIED and PROMOTED arrive as PUT",
  withServer(async (server, client) => {
    const watch = client.watch(["access_monitoring_rule"]);
    await watch.next();
    const a = server.createRequest({ user: "u", roles: ["r"] }).Metadata?.Name ?? "";
    const b = server.createRequest({ user: "u", roles: ["r"] }).Metadata?.Name ?? "";
    server.deny(a, "no");
    server.promote(b, "via list", { name: "al-1", title: "Admins" });
    server.putRule({
      name: "route-dba",
      condition: 'access_request.spec.roles.contains("dba")',
      notification: { name: "email", recipients: ["dba@example.com"] },
    });
    server.deleteRule("route-dba");
    const put = await watch.next();
    assert.equal(put.Type, "PUT");
    assert.equal(put.AccessMonitoringRule?.metadata?.name, "route-dba");
    assert.equal(put.AccessMonitoringRule?.kind, "access_monitoring_rule");
    assert.deepEqual(put.AccessMonitoringRule?.spec?.subjects, ["access_request"]);
    assert.deepEqual(put.AccessMonitoringRule?.spec?.notification, {
      name: "email",
      recipients: ["dba@example.com"],
    });
    const del = await watch.next();
    assert.equal(del.Type, "DELETE");
    assert.equal(del.ResourceHeader?.Kind, "access_monitoring_rule");
    assert.equal(del.ResourceHeader?.Metadata?.Name, "route-dba");
    assert.equal(watch.items.length, 3, "no access request events");

    const requests = client.watch(["access_request"]);
    await requests.next();
    server.deny(a, "still no");
    server.promote(b, "again", { name: "al-1", title: "Admins" });
    const denied = await requests.next();
    assert.equal(denied.AccessRequest?.Spec?.State, "DENIED");
    assert.equal(denied.AccessRequest?.Spec?.ResolveReason, "still no");
    const promoted = await requests.next();
    assert.equal(promoted.AccessRequest?.Spec?.State, "PROMOTED");
    assert.deepEqual(promoted.AccessRequest?.Spec?.accessList, { Name: "al-1", Title: "Admins" });
  }),
);

Deno.test(
  "partial success: INIT's WatchStatus lists the accepted kinds",
  withServer(async (_server, client) => {
    const watch = client.watch(["access_request", "access_monitoring_rule"], true);
    const init = await watch.next();
    assert.equal(init.Type, "INIT");
    assert.equal(init.Resource, "WatchStatus");
    assert.equal(init.WatchStatus?.Kind, "watch_status");
    assert.deepEqual(init.WatchStatus?.Spec?.Kinds?.map((k) => k.Kind), [
      "access_request",
      "access_monitoring_rule",
    ]);
  }),
);

Deno.test(
  "without access to rules: dropped with partial success, refused otherwise",
  withServer(async (server, client) => {
    const partial = client.watch(["access_request", "access_monitoring_rule"], true);
    const init = await partial.next();
    assert.deepEqual(init.WatchStatus?.Spec?.Kinds?.map((k) => k.Kind), ["access_request"]);
    server.putRule({ name: "r1", notification: { name: "email", recipients: ["x@y"] } });
    server.createRequest({ user: "u", roles: ["r"] });
    assert.equal((await partial.next()).Resource, "AccessRequest");

    const strict = client.watch(["access_request", "access_monitoring_rule"]);
    assert.equal((await strict.status()).code, grpc.status.PERMISSION_DENIED);
    const none = client.watch(["access_monitoring_rule"], true);
    assert.equal((await none.status()).code, grpc.status.INVALID_ARGUMENT);
    await rejects(
      client.unary("ListAccessMonitoringRulesWithFilter", {}, client.amr),
      grpc.status.PERMISSION_DENIED,
    );
  }, { allowAccessMonitoringRules: false }),
);

Deno.test(
  "nothing is replayed to a new watch",
  withServer(async (server, client) => {
    server.createRequest({ user: "u", roles: ["r"] });
    const first = client.watch(["access_request"]);
    await first.next();
    server.dropStreams();
    const status = await first.status();
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.equal(server.watchersConnected, 0);
    const second = client.watch(["access_request"]);
    assert.equal((await second.next()).Type, "INIT");
    const id = server.createRequest({ user: "v", roles: ["r"] }).Metadata?.Name;
    assert.equal((await second.next()).AccessRequest?.Metadata?.Name, id);
    assert.equal(second.items.length, 2);
  }),
);

Deno.test(
  "plugin data: create, update, compare failure, delete key, unknown request",
  withServer(async (server, client) => {
    const id = server.createRequest({ user: "alice", roles: ["dba"] }).Metadata?.Name ?? "";
    assert.deepEqual(await client.getPluginData(id), { PluginData: [] });

    await client.updatePluginData(id, { user: "alice", roles: "dba" }, { user: "" });
    assert.deepEqual(server.pluginData(id), { user: "alice", roles: "dba" });
    const seq = await client.getPluginData(id);
    assert.equal(seq.PluginData?.length, 1);
    const item = seq.PluginData?.[0];
    assert.equal(item?.Kind, "plugin_data");
    assert.equal(item?.Metadata?.Name, id);
    assert.deepEqual(item?.Spec?.Entries?.email?.Data, { user: "alice", roles: "dba" });

    await rejects(
      client.updatePluginData(id, { user: "mallory" }, { user: "" }),
      grpc.status.FAILED_PRECONDITION,
      /^expectations not met for field "user"$/,
    );
    await rejects(
      client.updatePluginData(id, { resolution: "APPROVED" }, { resolution: "DENIED" }),
      grpc.status.FAILED_PRECONDITION,
      /"resolution"/,
    );
    // Missing = "", and an empty Expect is no condition.
    await client.updatePluginData(id, { resolution: "APPROVED" }, { resolution: "" });
    await client.updatePluginData(id, { reviews_count: "1" });
    await client.updatePluginData(id, { roles: "" }, { user: "alice" });
    assert.deepEqual(server.pluginData(id), {
      user: "alice",
      resolution: "APPROVED",
      reviews_count: "1",
    });

    await rejects(
      client.updatePluginData("no-such-request", { user: "x" }),
      grpc.status.NOT_FOUND,
    );
    assert.deepEqual(await client.getPluginData("no-such-request"), { PluginData: [] });
    await rejects(
      client.unary("GetPluginData", { Kind: "user", Resource: id, Plugin: "email" }),
      grpc.status.INVALID_ARGUMENT,
    );
    assert.equal(server.callCount("UpdatePluginData"), 7);
  }),
);

Deno.test(
  "plugin data survives the request's deletion and is listed without a resource",
  withServer(async (server, client) => {
    const gone = server.createRequest({ user: "a", roles: ["r"] }).Metadata?.Name ?? "";
    const live = server.createRequest({ user: "b", roles: ["r"] }).Metadata?.Name ?? "";
    await client.updatePluginData(gone, { user: "a" });
    await client.updatePluginData(live, { user: "b" });
    server.setPluginData(live, { token: "t" }, "slack");
    server.setPluginData("legacy", {
      email: "ops@example.com",
      timestamp: "2026-11-22 10:00:00.5 +0000 UTC m=+1.0",
    });
    server.deleteRequest(gone);

    const seq = await client.getPluginData(gone);
    assert.deepEqual(seq.PluginData?.[0]?.Spec?.Entries?.email?.Data, { user: "a" });
    // Existing data of a deleted request can still be updated.
    await client.updatePluginData(gone, { resolution: "EXPIRED" }, { resolution: "" });
    assert.deepEqual(server.pluginData(gone), { user: "a", resolution: "EXPIRED" });

    const all = await client.unary<PbPluginDataSeq>("GetPluginData", {
      Kind: "access_request",
      Plugin: "email",
    });
    const byId = Object.fromEntries(
      (all.PluginData ?? []).map((d) => [d.Metadata?.Name, d.Spec?.Entries]),
    );
    assert.deepEqual(Object.keys(byId).sort(), [gone, live, "legacy"].sort());
    assert.deepEqual(byId[live]?.email?.Data, { user: "b" });
    assert.deepEqual(byId[live]?.slack?.Data, { token: "t" }, "every plugin's entry comes along");
    const slackOnly = await client.unary<PbPluginDataSeq>("GetPluginData", {
      Kind: "access_request",
      Plugin: "slack",
    });
    assert.deepEqual(slackOnly.PluginData?.map((d) => d.Metadata?.Name), [live]);
  }),
);

Deno.test(
  "ListAccessRequests pages by NextKey in creation order and filters",
  withServer(async (server, client) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(
        server.createRequest({ user: i % 2 ? "bob" : "alice", roles: ["r"] }).Metadata?.Name ?? "",
      );
    }
    server.approve(ids[1] ?? "", "ok");
    const seen: string[] = [];
    let key = "";
    let pages = 0;
    do {
      const page = await client.unary<PbListAccessRequestsResponse>("ListAccessRequests", {
        Limit: 100,
        StartKey: key,
      });
      assert.ok((page.AccessRequests?.length ?? 0) <= 2);
      seen.push(...(page.AccessRequests ?? []).map((r) => r.Metadata?.Name ?? ""));
      key = page.NextKey ?? "";
      pages++;
    } while (key !== "");
    assert.equal(pages, 3);
    assert.deepEqual(seen, ids);

    const bob = await client.unary<PbListAccessRequestsResponse>("ListAccessRequests", {
      Filter: { User: "bob" },
    });
    assert.deepEqual(bob.AccessRequests?.map((r) => r.Metadata?.Name), [ids[1], ids[3]]);
    assert.equal(bob.NextKey, "");
    const approved = await client.unary<PbListAccessRequestsResponse>("ListAccessRequests", {
      Filter: { State: "APPROVED" },
    });
    assert.deepEqual(approved.AccessRequests?.map((r) => r.Metadata?.Name), [ids[1]]);
    const one = await client.unary<PbListAccessRequestsResponse>("ListAccessRequests", {
      Filter: { ID: ids[4] },
    });
    assert.deepEqual(one.AccessRequests?.map((r) => r.Spec?.User), ["alice"]);
  }, { listPageSize: 2 }),
);

Deno.test(
  "an old server: ListAccessRequests is UNIMPLEMENTED, GetAccessRequestsV2 streams",
  withServer(async (server, client) => {
    const a = server.createRequest({ user: "alice", roles: ["r"] }).Metadata?.Name;
    const b = server.createRequest({ user: "bob", roles: ["r"] }).Metadata?.Name;
    const c = server.createRequest({ user: "alice", roles: ["r"] }).Metadata?.Name;
    await rejects(client.unary("ListAccessRequests", {}), grpc.status.UNIMPLEMENTED);
    const all = await client.stream<PbAccessRequest>("GetAccessRequestsV2", {}).all();
    assert.deepEqual(all.map((r) => r.Metadata?.Name), [a, b, c]);
    const alice = await client.stream<PbAccessRequest>("GetAccessRequestsV2", { User: "alice" })
      .all();
    assert.deepEqual(alice.map((r) => r.Metadata?.Name), [a, c]);
  }, { implementListAccessRequests: false }),
);

Deno.test(
  "ListAccessMonitoringRulesWithFilter pages and filters by subject and plugin",
  withServer(async (server, client) => {
    for (const name of ["d", "a", "c", "b"]) {
      server.putRule({ name, notification: { name: "email", recipients: [`${name}@x`] } });
    }
    server.putRule({ name: "e", notification: { name: "slack", recipients: ["#c"] } });
    server.putRule({
      name: "f",
      subjects: ["other"],
      notification: { name: "email", recipients: [] },
    });
    const names: string[] = [];
    let token = "";
    do {
      const page = await client.unary<PbListAccessMonitoringRulesResponse>(
        "ListAccessMonitoringRulesWithFilter",
        {
          page_size: 10,
          page_token: token,
          subjects: ["access_request"],
          notification_name: "email",
        },
        client.amr,
      );
      assert.ok((page.rules?.length ?? 0) <= 2);
      names.push(...(page.rules ?? []).map((r) => r.metadata?.name ?? ""));
      token = page.next_page_token ?? "";
    } while (token !== "");
    assert.deepEqual(names, ["a", "b", "c", "d"]);
  }),
);

Deno.test(
  "what the fake sends decodes exactly like Teleport's own bytes",
  withServer(async (server, client) => {
    const vector = async (name: string, type: string) =>
      decodeMessage(type, await readWireVector(`${name}.bin`));
    assert.deepEqual(await client.ping(), await vector("ping_response", "proto.PingResponse"));

    const plain = client.watch(["access_request"]);
    assert.deepEqual(await plain.next(), await vector("event_init", "proto.Event"));
    const partial = client.watch(["access_request", "access_monitoring_rule"], true);
    assert.deepEqual(
      await partial.next(),
      await vector("event_init_watch_status", "proto.Event"),
    );
    const id = "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80";
    server.createRequest({ id, user: "alice@example.com", roles: ["editor"] });
    server.deleteRequest(id);
    await plain.next();
    assert.deepEqual(await plain.next(), await vector("event_delete", "proto.Event"));
  }),
);

Deno.test(
  "a client certificate from another CA, an expired one, or none is refused",
  withServer(async (server) => {
    const other = await makeCa("evil.example.com");
    const foreign = await issueCert(other, { commonName: "eve", usage: "client" });
    const a = new RawClient(server.addr, { ...foreign, cas: [server.caPem] });
    const expired = await server.issueClientIdentity({
      user: "late",
      notBefore: new Date(Date.now() - 7200_000),
      notAfter: new Date(Date.now() - 3600_000),
    });
    const b = new RawClient(server.addr, expired);
    const anonymous = new (teleportProto().AuthService)(
      server.addr,
      grpc.credentials.createSsl(Buffer.from(server.caPem)),
      { "grpc.ssl_target_name_override": TELEPORT_SERVER_NAME },
    );
    try {
      await rejects(a.ping(), grpc.status.UNAVAILABLE);
      await rejects(b.ping(), grpc.status.UNAVAILABLE);
      const ping = (anonymous as unknown as Record<string, UnaryMethod>).Ping;
      const noCert = new Promise((resolve, reject) =>
        ping?.call(
          anonymous,
          {},
          new grpc.Metadata(),
          { deadline: Date.now() + RPC_DEADLINE_MS },
          (err, value) => err ? reject(err) : resolve(value),
        )
      );
      await rejects(noCert, grpc.status.UNAVAILABLE);
      assert.equal(server.callCount("Ping"), 0, "no RPC got through");
    } finally {
      a.close();
      b.close();
      anonymous.close();
    }
  }),
);

Deno.test(
  "the client verifies the server against its CAs",
  withServer(async (server) => {
    const id = await server.issueClientIdentity();
    const stranger = await makeCa("stranger");
    const client = new RawClient(server.addr, { ...id, cas: [stranger.cert] });
    try {
      await rejects(client.ping(), grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
  }),
);

Deno.test(
  "the serial and CN of each RPC's client certificate are recorded",
  withServer(async (server, first) => {
    await first.ping();
    const id = await server.issueClientIdentity({ user: "bot-email", serial: "0a1b2c3d" });
    assert.equal(id.serial, "a1b2c3d");
    const second = new RawClient(server.addr, id);
    try {
      await second.ping();
      await second.getPluginData("x");
    } finally {
      second.close();
    }
    assert.equal(server.peers.length, 3);
    assert.equal(server.peers[0]?.commonName, "access-plugin");
    assert.deepEqual(server.peers.slice(1).map((p) => [p.method, p.serial, p.commonName]), [
      ["Ping", "a1b2c3d", "bot-email"],
      ["GetPluginData", "a1b2c3d", "bot-email"],
    ]);
    assert.equal(server.serialsSeen.length, 2);
    assert.equal(server.serialsSeen[1], "a1b2c3d");
  }),
);

Deno.test("writeIdentity writes a Teleport identity file a client can use", async () => {
  const server = await TeleportTestServer.start({ clusterName: "c.example.com" });
  const dir = await Deno.makeTempDir();
  let client: RawClient | undefined;
  try {
    const path = `${dir}/identity`;
    const id = await server.writeIdentity(path, { user: "bot" });
    const text = await Deno.readTextFile(path);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const blocks = [...text.matchAll(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n/g)];
    assert.match(blocks[0]?.[1] ?? "", /PRIVATE KEY/);
    assert.equal(blocks[1]?.[0], id.cert);
    assert.equal(blocks[2]?.[0], server.caPem);
    assert.match(text, /^@cert-authority c\.example\.com,\*\.c\.example\.com /m);
    client = new RawClient(server.addr, {
      key: blocks[0]?.[0] ?? "",
      cert: blocks[1]?.[0] ?? "",
      cas: blocks.slice(2).map((b) => b[0]),
    });
    assert.equal((await client.ping()).ClusterName, "c.example.com");
    assert.equal(server.peers[0]?.serial, id.serial);
  } finally {
    client?.close();
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "restart keeps the port and state; open watches end with UNAVAILABLE",
  withServer(async (server, client) => {
    const port = server.port;
    const id = server.createRequest({ user: "u", roles: ["r"] }).Metadata?.Name ?? "";
    await client.updatePluginData(id, { user: "u" });
    const watch = client.watch(["access_request"]);
    await watch.next();

    await server.stop();
    assert.equal(server.running, false);
    assert.equal((await watch.status()).code, grpc.status.UNAVAILABLE);
    await rejects(client.ping(), grpc.status.UNAVAILABLE);

    await server.restart();
    assert.equal(server.port, port);
    // grpc-js fails fast while its channel is in backoff; a real client retries.
    const seq = await client.unary<PbPluginDataSeq>(
      "GetPluginData",
      { Kind: "access_request", Resource: id, Plugin: "email" },
      client.auth,
      true,
    );
    assert.deepEqual(seq.PluginData?.[0]?.Spec?.Entries?.email?.Data, { user: "u" });
    const again = client.watch(["access_request"]);
    assert.equal((await again.next()).Type, "INIT");
    server.approve(id, "ok");
    assert.equal((await again.next()).AccessRequest?.Spec?.State, "APPROVED");

    await server.restart(); // while running
    assert.equal(server.port, port);
    assert.equal((await again.status()).code, grpc.status.UNAVAILABLE);
    const ping = await client.unary<PbPingResponse>("Ping", {}, client.auth, true);
    assert.equal(ping.ClusterName, "teleport.example.com");
  }),
);

Deno.test(
  "refuseClients answers UNAVAILABLE until turned off; failNext injects statuses",
  withServer(async (server, client) => {
    const watch = client.watch(["access_request"]);
    await watch.next();
    server.refuseClients(true);
    assert.equal((await watch.status()).code, grpc.status.UNAVAILABLE);
    await rejects(client.ping(), grpc.status.UNAVAILABLE);
    const refused = client.watch(["access_request"]);
    assert.equal((await refused.status()).code, grpc.status.UNAVAILABLE);
    server.refuseClients(false);
    assert.equal((await client.ping()).ServerVersion, "17.4.8");

    server.failNext("GetPluginData", { code: grpc.status.UNAVAILABLE, details: "blip" }, 2);
    await rejects(client.getPluginData("x"), grpc.status.UNAVAILABLE, /blip/);
    await rejects(client.getPluginData("x"), grpc.status.UNAVAILABLE, /blip/);
    assert.deepEqual(await client.getPluginData("x"), { PluginData: [] });
    assert.equal(server.callCount("GetPluginData"), 3);
    assert.equal(server.callCount("Ping"), 2);
  }),
);
