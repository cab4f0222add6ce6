/**
 * Integration tests of the Teleport client (issue "Teleport client"): the
 * real `connectTeleport` / `GrpcTeleportClient` / `runWatcher` against the
 * fake Auth Service (gRPC, mutual TLS) over loopback, directly, through a
 * TLS-routing proxy and through an HTTP CONNECT proxy; credentials refused
 * for the right reason; and the plugin run as an operator runs it.
 */

import { type Defer, withTeardown } from "./bounded.ts";
import { rejection } from "./assert.ts";
import assert from "node:assert/strict";
import { connectTeleport, GrpcTeleportClient } from "../src/teleport/client.ts";
import { authAlpnProtocol, type CredentialsSource, type Env } from "../src/teleport/dial.ts";
import { RECONNECT_BACKOFF, runWatcher } from "../src/teleport/watcher.ts";
import { CompareFailedError, isTeleportError, type WatchEvent } from "../src/teleport/types.ts";
import { loadConfigSync } from "../src/config/load.ts";
import { runPlugin } from "../src/plugin/run.ts";
import { defaultIdentityFs } from "../src/teleport/identity_store.ts";
import type { Mailer } from "../src/mail/mailer.ts";
import { issueCert, makeCa } from "./pki.ts";
import {
  type ClientIdentity,
  TeleportTestServer,
  type TeleportTestServerOptions,
} from "./teleport_server.ts";
import { startAuthRoutingProxy } from "./routing_proxy.ts";
import { startConnectProxy } from "./connect_proxy.ts";
import { eventually, killPlugin, spawnPlugin, startCluster } from "./harness.ts";
import { captureTestLogs, type TestLogger } from "./test_log.ts";

/** Upper bound of one test; each should take well under 5 s. */
const TEST_TIMEOUT_MS = 15_000;
/** Budget per dial plan given to connectTeleport. */
const ATTEMPT_TIMEOUT_MS = 5_000;
/** How long to wait for one watch event. */
const EVENT_WAIT_MS = 5_000;
/** Slack on top of the watcher's reconnect cap, for a loaded CI machine. */
const SLACK_MS = 2_000;
/** How long the server stays down in the restart test (several failed reconnects). */
const OUTAGE_MS = 500;
/** How long the black-box plugin may take to start (a cold `deno run` compiles main.ts). */
const CHILD_READY_MS = 30_000;
/** Upper bound of the black-box test: start, reload, one email, stop. */
const CHILD_TEST_TIMEOUT_MS = CHILD_READY_MS + 15_000;

const NO_ENV: Env = {};

// --- logs ------------------------------------------------------------------

/** Loggers whose lines (and only those) come back from `lines()`. */
const testLogger = captureTestLogs();

// --- helpers ---------------------------------------------------------------

/**
 * A test with a deadline and a teardown stack run however it ends.
 *
 * `failedConnections: true` turns the op sanitizer off: after a connection
 * attempt fails, grpc-js 1.14.7 arms its subchannel's reconnect backoff timer
 * (unref'd, ~1 s) and, as pick_first already asked the subchannel to keep
 * connecting, dials once more when it fires, arming another; closing the
 * client clears neither (`Subchannel.unref` never calls `stopBackoff`). A test
 * that fails a connection on purpose would otherwise have to sleep 2 s out.
 * Resources (sockets, servers) are still checked.
 */
function bounded(
  name: string,
  fn: (defer: Defer) => Promise<void>,
  opts: { failedConnections?: boolean; timeoutMs?: number } = {},
): void {
  const timeoutMs = opts.timeoutMs ?? TEST_TIMEOUT_MS;
  Deno.test({
    name,
    sanitizeOps: !opts.failedConnections,
    fn: () => withTeardown(timeoutMs, fn),
  });
}

async function startServer(
  defer: Defer,
  opts: TeleportTestServerOptions = {},
): Promise<TeleportTestServer> {
  const server = await TeleportTestServer.start({ keyType: "ec", ...opts });
  defer(() => server.close());
  return server;
}

/** The credentials source of a fixed identity. */
function source(id: Pick<ClientIdentity, "key" | "cert" | "cas">): CredentialsSource {
  return () => ({ key: id.key, cert: id.cert, cas: id.cas });
}

/** `connectTeleport` with the test's identity (default: a fresh one from the server). */
async function connect(
  defer: Defer,
  server: TeleportTestServer,
  o: {
    identity?: Pick<ClientIdentity, "key" | "cert" | "cas">;
    credentials?: CredentialsSource;
    addr?: string;
    env?: Env;
    log?: TestLogger["log"];
  } = {},
): Promise<GrpcTeleportClient> {
  const identity = o.identity ?? await server.issueClientIdentity();
  const { client } = await connectTeleport({
    addr: o.addr ?? server.addr,
    credentials: o.credentials ?? source(identity),
    clusterName: server.clusterName,
    env: o.env ?? NO_ENV,
    log: o.log ?? testLogger("connect").log,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
  });
  defer(() => client.close());
  return client;
}

/** Reads a watch stream one event at a time, each within a deadline. */
function openWatch(client: GrpcTeleportClient, defer: Defer, kinds = ["access_request"]) {
  const ctl = new AbortController();
  const it = client.watch(kinds, ctl.signal)[Symbol.asyncIterator]();
  defer(async () => {
    ctl.abort();
    await it.return?.().catch(() => {});
  });
  return {
    async next(): Promise<WatchEvent> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const r = await Promise.race([
          it.next(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`No watch event within ${EVENT_WAIT_MS} ms`)),
              EVENT_WAIT_MS,
            );
          }),
        ]);
        if (r.done) throw new Error("The watch stream ended");
        return r.value;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

// --- 1. connect + ping -----------------------------------------------------

bounded("connectTeleport: Ping gives the cluster name, version and features", async (defer) => {
  const server = await startServer(defer, {
    clusterName: "prod.example.com",
    serverVersion: "16.4.2",
    advancedAccessWorkflows: true,
    proxyPublicAddr: "teleport.example.com:443",
  });
  const { log, lines } = testLogger("ping");
  const identity = await server.issueClientIdentity();
  const { client, ping } = await connectTeleport({
    addr: server.addr,
    credentials: source(identity),
    clusterName: server.clusterName,
    env: NO_ENV,
    log,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
  });
  defer(() => client.close());
  const want = {
    clusterName: "prod.example.com",
    serverVersion: "16.4.2",
    advancedAccessWorkflows: true,
    proxyPublicAddr: "teleport.example.com:443",
  };
  assert.deepEqual(ping, want);
  assert.deepEqual(await client.ping(), want);
  assert.equal(server.callCount("Ping"), 2);
  assert.deepEqual(server.serialsSeen, [identity.serial]);
  assert.ok(
    lines().some((l) =>
      /Connected to Teleport cluster prod\.example\.com \(16\.4\.2\) via direct/.test(l)
    ),
    lines().join(""),
  );

  server.advancedAccessWorkflows = false;
  server.proxyPublicAddr = "";
  assert.deepEqual(await client.ping(), {
    ...want,
    advancedAccessWorkflows: false,
    proxyPublicAddr: "",
  });
});

bounded("connectTeleport refuses a server older than 6.1.0", async (defer) => {
  const server = await startServer(defer, { serverVersion: "6.0.4" });
  const error = await rejection(connect(defer, server));
  assert.match(error.message, /Teleport 6\.0\.4 is too old: this plugin needs 6\.1\.0 or newer/);

  // The boundary is accepted.
  const ok = await startServer(defer, { serverVersion: "6.1.0" });
  assert.equal((await (await connect(defer, ok)).ping()).serverVersion, "6.1.0");
});

// --- 2. watch --------------------------------------------------------------

bounded(
  "watch(access_request): INIT, PUT, PUT, DELETE in order, as domain types",
  async (defer) => {
    const server = await startServer(defer);
    const client = await connect(defer, server);
    const events = openWatch(client, defer);

    const init = await events.next();
    assert.equal(init.type, "init");
    assert.deepEqual(init.type === "init" && init.acceptedKinds, ["access_request"]);

    const before = Date.now();
    server.createRequest({
      id: "req-1",
      user: "alice@example.com",
      roles: ["editor", "auditor"],
      reason: "hotfix",
      suggestedReviewers: ["bob@example.com"],
    });
    const created = await events.next();
    assert.ok(created.type === "put" && created.kind === "access_request", created.type);
    assert.equal(created.request.id, "req-1");
    assert.equal(created.request.state, "PENDING");
    assert.equal(created.request.user, "alice@example.com");
    assert.deepEqual(created.request.roles, ["editor", "auditor"]);
    assert.equal(created.request.requestReason, "hotfix");
    assert.deepEqual(created.request.suggestedReviewers, ["bob@example.com"]);
    assert.ok(created.request.created instanceof Date);
    assert.ok(Math.abs(created.request.created.getTime() - before) < 5_000);
    assert.ok(created.request.expires instanceof Date);
    // Go's zero time on the wire is "unset" here.
    assert.equal(created.request.maxDuration, undefined);

    server.approve("req-1", "looks fine");
    const approved = await events.next();
    assert.ok(approved.type === "put" && approved.kind === "access_request");
    assert.equal(approved.request.id, "req-1");
    assert.equal(approved.request.state, "APPROVED");
    assert.equal(approved.request.resolveReason, "looks fine");

    server.deleteRequest("req-1");
    assert.deepEqual(await events.next(), {
      type: "delete",
      kind: "access_request",
      name: "req-1",
    });
  },
);

// --- 3. plugin data and listing -------------------------------------------

bounded(
  "plugin data: create, update, compare failed, list with a deleted request",
  async (defer) => {
    const server = await startServer(defer);
    const client = await connect(defer, server);
    server.createRequest({ id: "a", user: "u@example.com", roles: ["r"] });
    server.createRequest({ id: "b", user: "u@example.com", roles: ["r"] });

    assert.equal(await client.getPluginData("a"), undefined);
    // Create only if absent.
    await client.updatePluginData("a", { claim: "me", count: "0" }, { claim: "" });
    assert.deepEqual(await client.getPluginData("a"), { claim: "me", count: "0" });
    // Update with the right expectation; "" deletes a key.
    await client.updatePluginData("a", { count: "1", claim: "" }, { count: "0" });
    assert.deepEqual(await client.getPluginData("a"), { count: "1" });
    assert.deepEqual(server.pluginData("a"), { count: "1" });

    // A stale expectation is a CompareFailedError naming the request.
    const stale = await rejection(client.updatePluginData("a", { count: "2" }, { count: "0" }));
    assert.ok(stale instanceof CompareFailedError, stale.name);
    assert.match(stale.message, /Plugin data of request "a" changed: expectations not met/);
    assert.deepEqual(await client.getPluginData("a"), { count: "1" });
    // Another race: the record was created meanwhile.
    await assert.rejects(
      client.updatePluginData("a", { claim: "other" }, { claim: "", count: "" }),
      CompareFailedError,
    );
    // Other errors keep their own kind, not compare failures.
    const missing = await rejection(client.updatePluginData("nope", { x: "1" }, {}));
    assert.ok(!(missing instanceof CompareFailedError));
    assert.ok(isTeleportError(missing, "not_found"), String(missing));
    assert.match(missing.message, /^UpdatePluginData failed: /);

    await client.updatePluginData("b", { resolution: "", count: "7" }, {});
    server.setPluginData("b", { other: "x" }, "slack");
    server.deleteRequest("a");
    const listed = await client.listPluginData();
    assert.deepEqual(
      listed.sort((x, y) => x.requestId.localeCompare(y.requestId)),
      [{ requestId: "a", data: { count: "1" } }, { requestId: "b", data: { count: "7" } }],
    );
  },
);

bounded("listAccessRequests reads every page (the server pages by 2)", async (defer) => {
  const server = await startServer(defer, { listPageSize: 2 });
  const client = await connect(defer, server);
  assert.deepEqual(await client.listAccessRequests(), []);
  const t0 = Date.now() - 60_000;
  const ids = ["r1", "r2", "r3", "r4", "r5"];
  ids.forEach((id, i) =>
    server.createRequest({
      id,
      user: `${id}@example.com`,
      roles: ["editor"],
      created: new Date(t0 + i * 1000),
    })
  );
  server.approve("r4", "ok");
  const all = await client.listAccessRequests();
  assert.deepEqual(all.map((r) => r.id), ids);
  assert.equal(all.find((r) => r.id === "r4")?.state, "APPROVED");
  assert.equal(all[0]?.created?.getTime(), t0);
  assert.equal(server.callCount("ListAccessRequests"), 1 + 3);

  const one = await client.listAccessRequests({ id: "r3" });
  assert.deepEqual(one.map((r) => r.id), ["r3"]);
});

bounded(
  "listAccessRequests asks again with smaller pages when one is over the 4 MiB a message may have",
  async (defer) => {
    const server = await startServer(defer, { listPageSize: 500 });
    const client = await connect(defer, server);
    // Within Teleport's limits: a 4,000-character reason, 60 resources; 500 of them are ~4.5 MB.
    const resources = Array.from({ length: 60 }, (_, i) => ({
      kind: "node",
      name: `node-${i}-${"x".repeat(40)}`,
    }));
    for (let i = 0; i < 500; i++) {
      server.createRequest({
        user: `u${i}@example.com`,
        roles: ["editor"],
        reason: "r".repeat(4000),
        requestedResources: resources,
      });
    }
    const all = await client.listAccessRequests();
    assert.equal(all.length, 500);
    assert.equal(new Set(all.map((r) => r.id)).size, 500);
    // One refused page of 500, then pages of 250.
    assert.equal(server.callCount("ListAccessRequests"), 1 + 2);
  },
);

bounded(
  "listAccessRequests stops with an error when the server's page keys come back",
  async (defer) => {
    const server = await startServer(defer, { listPageSize: 1 });
    const client = await connect(defer, server);
    server.createRequest({ user: "alice", roles: ["editor"] });
    server.createRequest({ user: "bob", roles: ["editor"] });
    // A faulty server: every request at the same place, so each next key points back to the start.
    const order = server.cluster.creationOrder.bind(server.cluster);
    server.cluster.creationOrder = () => order().map((r) => ({ ...r, createdMs: 1, seq: 1 }));
    await assert.rejects(
      client.listAccessRequests(),
      /pages do not end \(a next page key came back\)/,
    );
    assert.ok(server.callCount("ListAccessRequests") <= 3);
  },
);

bounded("listAccessRequests falls back to GetAccessRequestsV2 on UNIMPLEMENTED", async (defer) => {
  const server = await startServer(defer, { implementListAccessRequests: false });
  const client = await connect(defer, server);
  for (const id of ["x1", "x2", "x3"]) {
    server.createRequest({ id, user: "u@example.com", roles: ["editor"] });
  }
  assert.deepEqual((await client.listAccessRequests()).map((r) => r.id), ["x1", "x2", "x3"]);
  assert.equal(server.callCount("ListAccessRequests"), 1);
  assert.equal(server.callCount("GetAccessRequestsV2"), 1);
  assert.deepEqual((await client.listAccessRequests({ id: "x2" })).map((r) => r.id), ["x2"]);
});

// --- 4. watcher reconnects -------------------------------------------------

bounded(
  "runWatcher over the real client comes back after dropped streams and a restart",
  async (defer) => {
    const server = await startServer(defer);
    const client = await connect(defer, server);
    const { log } = testLogger("watcher");
    const stop = new AbortController();
    let inits = 0;
    let reconciles = 0;
    const seen: string[] = [];
    const done = runWatcher({
      client,
      kinds: ["access_request"],
      handleEvent: (event) => {
        if (event.type === "put" && event.kind === "access_request") {
          seen.push(`${event.request.id}:${event.request.state}`);
        }
        return Promise.resolve();
      },
      reconcile: () => {
        reconciles++;
        return Promise.resolve([]);
      },
      onInit: () => void inits++,
      log,
      shutdownGraceMs: 100,
    }, stop.signal);
    defer(async () => {
      stop.abort();
      await done;
    });

    await eventually(() => reconciles === 1, EVENT_WAIT_MS, "the first reconcile");
    assert.equal(server.watchersConnected, 1);

    // The stream breaks: the watcher is back within the backoff cap.
    const backWithinMs = RECONNECT_BACKOFF.capMs + SLACK_MS;
    server.dropStreams();
    await eventually(() => reconciles === 2, backWithinMs, "a reconcile after the drop");
    await server.waitForWatchers(1);
    server.createRequest({ id: "after-drop", user: "u@example.com", roles: ["r"] });
    await eventually(() => seen.includes("after-drop:PENDING"), EVENT_WAIT_MS, "the event");

    // The server goes away (connections refused for a while) and comes back.
    await server.stop();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    assert.equal(reconciles, 2);
    await server.restart();
    await eventually(() => reconciles === 3, backWithinMs, "a reconcile after the restart");
    await server.waitForWatchers(1);
    server.createRequest({ id: "after-restart", user: "u@example.com", roles: ["r"] });
    await eventually(() => seen.includes("after-restart:PENDING"), EVENT_WAIT_MS, "the event");
    assert.equal(inits, 3);
    assert.deepEqual(seen, ["after-drop:PENDING", "after-restart:PENDING"]);
  },
);

bounded("the transport's own reconnect backoff stays under the watcher's", async (defer) => {
  // grpc-js fails every call while it waits between connection attempts (up
  // to 120 s by default). The watcher retries at least capMs / 2 apart at its
  // cap (jitter in [0.5, 1)); grpc-js's wait, with its ±20 % jitter, must be
  // over by then, or a server that is back would still be refused.
  const server = await startServer(defer);
  const client = await connect(defer, server);
  const max = client.channel.options["grpc.max_reconnect_backoff_ms"];
  assert.equal(typeof max, "number", "grpc.max_reconnect_backoff_ms is not set");
  assert.ok((max as number) * 1.2 < RECONNECT_BACKOFF.capMs / 2, `${max} ms`);
});

// --- 6. expired identity at startup ---------------------------------------

bounded(
  "runPlugin refuses an expired identity before dialing, saying how to renew",
  async (defer) => {
    const cluster = await startCluster();
    defer(() => cluster.close());
    const hourAgo = new Date(Date.now() - 3600_000);
    const expired = await cluster.teleport.writeIdentity(cluster.identityPath, {
      user: "bot-email",
      notBefore: new Date(hourAgo.getTime() - 3600_000),
      notAfter: hourAgo,
    });
    const { config } = loadConfigSync(await cluster.writeConfig());
    const { log } = testLogger("expired");
    let mailers = 0;
    const error = await rejection(runPlugin(config, {
      env: NO_ENV,
      identityFs: defaultIdentityFs(),
      createMailer: () => {
        mailers++;
        return {} as Mailer;
      },
      onReload: () => {},
      log,
      owner: "test/expired",
    }, new AbortController().signal));
    const notAfter = expired.notAfter.toISOString();
    assert.match(error.message, /TLS certificate "CN=bot-email/);
    assert.match(error.message, new RegExp(`\\(serial 0*${expired.serial}\\)`, "i"));
    assert.ok(error.message.includes(`from "${cluster.identityPath}"`), error.message);
    assert.ok(error.message.includes(`expired at ${notAfter}`), error.message);
    assert.ok(
      error.message.includes(
        `renew it with "tctl auth sign --user=bot-email --format=file --out=${cluster.identityPath}"`,
      ),
      error.message,
    );
    assert.equal(cluster.teleport.callCount("Ping"), 0);
    assert.equal(mailers, 0);
  },
);

bounded(
  "runPlugin: the mailer starts while the cluster is dialled; an unreachable cluster's error wins and the mailer is closed",
  async (defer) => {
    const cluster = await startCluster();
    defer(() => cluster.close());
    // A port nothing listens on: every route is refused at once.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const { config } = loadConfigSync(await cluster.writeConfig({ addr: `127.0.0.1:${port}` }));
    const { log } = testLogger("unreachable");
    const events: string[] = [];
    const mailer: Mailer = {
      send: () => Promise.reject(new Error("no email may be sent")),
      checkHealth: () => {
        events.push("health");
        return Promise.resolve();
      },
      close: () => {
        events.push("close");
        return Promise.resolve();
      },
    };
    const error = await rejection(runPlugin(config, {
      env: NO_ENV,
      identityFs: defaultIdentityFs(),
      createMailer: () => {
        events.push("create");
        return mailer;
      },
      onReload: () => {},
      log,
      owner: "test/unreachable",
    }, new AbortController().signal));
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(error.message, /Mailer health check/);
    await eventually(() => events.includes("close"), 5_000, "the mailer closed");
    assert.deepEqual(events, ["create", "health", "close"]);
  },
);

// --- 8. routes ---------------------------------------------------------------

bounded("HTTPS_PROXY: the direct route goes through HTTP CONNECT", async (defer) => {
  const server = await startServer(defer);
  // Loopback never goes through a proxy: ask for a name the proxy maps to the server.
  const addr = `auth.teleport.test:${server.port}`;
  const proxy = await startConnectProxy({
    route: () => ({ host: "127.0.0.1", port: server.port }),
  });
  defer(() => proxy.close());
  const { log, lines } = testLogger("connect-proxy");
  const client = await connect(defer, server, {
    addr,
    env: { HTTPS_PROXY: proxy.url, NO_PROXY: "localhost,.internal" },
    log,
  });
  assert.equal((await client.ping()).clusterName, server.clusterName);
  // The routes run at once, each through a CONNECT of its own to the same address.
  assert.ok(proxy.requests.length >= 1);
  assert.deepEqual(new Set(proxy.requests.map((r) => r.target)), new Set([addr]));
  assert.ok(
    lines().some((l) => l.includes(`via HTTPS proxy ${proxy.url}`)),
    lines().join(""),
  );
});

bounded("HTTPS_PROXY to a proxy on :443: TLS routing inside the CONNECT tunnel", async (defer) => {
  const server = await startServer(defer);
  const routing = await startAuthRoutingProxy(defer, server.clusterName, server.port);
  const connectProxy = await startConnectProxy({
    route: () => ({ host: "127.0.0.1", port: routing.port }),
  });
  defer(() => connectProxy.close());
  const addr = "teleport.example.com:443";
  const client = await connect(defer, server, { addr, env: { https_proxy: connectProxy.url } });
  assert.equal((await client.ping()).clusterName, server.clusterName);
  // The routes run at once, each through a CONNECT of its own; TLS routing is the one routed.
  assert.deepEqual(new Set(connectProxy.requests.map((r) => r.target)), new Set([addr]));
  assert.ok(routing.hellos.some((h) => h.alpn[0] === authAlpnProtocol(server.clusterName)));
  assert.equal(routing.counts.forwarded, 1);
});

// --- 9. black box -------------------------------------------------------------

bounded(
  "black box: main.ts start gets ready, reloads on SIGHUP and exits 0 on SIGTERM",
  async (defer) => {
    const cluster = await startCluster();
    defer(() => cluster.close());
    const plugin = spawnPlugin(await cluster.writeConfig());
    defer(() => killPlugin(plugin));
    await plugin.waitFor(/Plugin is ready/, CHILD_READY_MS);
    const first = cluster.teleport.serialsSeen;
    assert.equal(first.length, 1);

    const renewed = await cluster.teleport.writeIdentity(cluster.identityPath);
    plugin.child.kill("SIGHUP");
    await plugin.waitFor(
      new RegExp(`Identity reloaded \\(SIGHUP\\): certificate serial 0*${renewed.serial}`, "i"),
      EVENT_WAIT_MS,
    );

    // Still running: a new request is mailed.
    cluster.teleport.createRequest({ user: "alice@example.com", roles: ["editor"] });
    const [mail] = await cluster.smtp.waitFor(1, EVENT_WAIT_MS);
    assert.deepEqual(mail?.envelope.to, ["ops@example.com"]);

    plugin.child.kill("SIGTERM");
    const status = await plugin.status;
    assert.equal(status.code, 0, plugin.output());
    assert.match(plugin.output(), /SIGTERM received/);
  },
  { timeoutMs: CHILD_TEST_TIMEOUT_MS },
);

// --- connections that fail on purpose ----------------------------------------
//
// Last in this file, on purpose: a subchannel whose connection failed keeps
// grpc-js's reconnect backoff cycling for a second or two after its client
// closed (see `bounded`), and those timers would otherwise be started inside
// whichever test runs next and fail its op sanitizer.

// 5. Refused credentials.

bounded("a client certificate from another CA is refused, and the error says so", async (defer) => {
  const server = await startServer(defer);
  const stranger = await makeCa("stranger.example.com", { keyType: "ec" });
  const cert = await issueCert(stranger, {
    commonName: "access-plugin",
    usage: "client",
    keyType: "ec",
  });
  const error = await rejection(
    connect(defer, server, { identity: { key: cert.key, cert: cert.cert, cas: [server.caPem] } }),
  );
  assert.equal(error.name, "DialError");
  assert.match(error.message, new RegExp(`Cannot reach Teleport at "${server.addr}"`));
  assert.match(
    error.message,
    /direct to Auth \(ALPN h2\): the server closed the connection right after the TLS handshake: it refused the identity's client certificate \(expired, or not issued by this cluster's Teleport CA\)/,
  );
  assert.equal(server.callCount("Ping"), 0);
}, { failedConnections: true });

bounded(
  "an identity whose CA is not the server's is refused, and the error says so",
  async (defer) => {
    const server = await startServer(defer);
    const stranger = await makeCa("stranger.example.com", { keyType: "ec" });
    const identity = await server.issueClientIdentity();
    const error = await rejection(
      connect(defer, server, { identity: { ...identity, cas: [stranger.cert] } }),
    );
    assert.equal(error.name, "DialError");
    assert.match(
      error.message,
      /direct to Auth \(ALPN h2\): server certificate is not signed by the identity's Teleport CA/,
    );
    assert.equal(server.callCount("Ping"), 0);
  },
  { failedConnections: true },
);

// 8. The TLS routing route: the direct plan, tried first on a custom port, is refused.

bounded("TLS routing: through a proxy that routes on the auth ALPN", async (defer) => {
  const server = await startServer(defer);
  const proxy = await startAuthRoutingProxy(defer, server.clusterName, server.port);
  const { log, lines } = testLogger("routing");
  const client = await connect(defer, server, { addr: proxy.addr, log });
  assert.equal((await client.ping()).clusterName, server.clusterName);
  // Direct and TLS routing run at once (the proxy refuses plain h2). The connection-upgrade
  // test waits for them (its /webapi/find dial costs a handshake against every system root),
  // and TLS routing was up first: it sent nothing, so two ClientHellos in all.
  assert.deepEqual(
    proxy.hellos.map((h) => h.alpn[0]).sort(),
    [authAlpnProtocol(server.clusterName), "h2"].sort(),
  );
  const [direct, routed] = ["h2", authAlpnProtocol(server.clusterName)].map((first) =>
    proxy.hellos.find((h) => h.alpn[0] === first)
  );
  assert.equal(direct?.serverName, "teleport.cluster.local");
  assert.equal(routed?.serverName, "teleport.cluster.local");
  assert.deepEqual(routed?.alpn, [authAlpnProtocol(server.clusterName), "h2"]);
  assert.equal(proxy.counts.forwarded, 1);
  assert.ok(lines().some((l) => /via TLS routing through the proxy/.test(l)), lines().join(""));
  assert.ok(lines().some((l) => /Dial attempt failed: direct to Auth/.test(l)), lines().join(""));
}, { failedConnections: true });
