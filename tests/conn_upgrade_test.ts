/**
 * The connection-upgrade route (issue 11, routes of the Go plugin) against
 * the routing fake standing for an L7 load balancer and the Proxy behind it:
 * detection (`/webapi/find`, the test dial), `TELEPORT_TLS_ROUTING_CONN_UPGRADE`
 * and `…_MODE=legacy`, the outer TLS against the system roots plus the proxy
 * CA, the inner mutual TLS against the identity's CAs, pings answered, and
 * the connection cut when the client closes. `conn_upgrade_nginx_test.ts`
 * does the same through a real nginx.
 */

import assert from "node:assert/strict";
import { type Defer, withTeardown } from "./bounded.ts";
import { rejection } from "./assert.ts";
import { type GrpcTeleportClient, pingProbe } from "../src/teleport/client.ts";
import {
  authAlpnProtocol,
  connectAuth,
  type ConnectAuthOptions,
  type CredentialsSource,
  DialError,
  type Probe,
  TELEPORT_API_SERVER_NAME,
} from "../src/teleport/dial.ts";
import type { PingInfo } from "../src/teleport/types.ts";
import { issueCert, makeCa, type Pem } from "./pki.ts";
import { type ClientIdentity, TeleportTestServer } from "./teleport_server.ts";
import { type RoutingProxy, type RoutingProxyOptions, startRoutingProxy } from "./routing_proxy.ts";

/** Upper bound of one test. */
const TEST_TIMEOUT_MS = 20_000;
/** Budget per route given to connectAuth. */
const ATTEMPT_TIMEOUT_MS = 5_000;
/** The fake proxy's WebSocket ping interval. */
const PING_INTERVAL_MS = 50;
/** How long to wait for something the fake proxy counts. */
const WAIT_MS = 3_000;

function bounded(name: string, fn: (defer: Defer) => Promise<void>): void {
  // grpc-js arms reconnect timers for the routes that lost or failed (see teleport_client_test.ts).
  Deno.test({ name, sanitizeOps: false, fn: () => withTeardown(TEST_TIMEOUT_MS, fn) });
}

interface Pinged {
  client: GrpcTeleportClient;
  ping: PingInfo;
}

const probe: Probe<Pinged> = pingProbe;

function source(id: Pick<ClientIdentity, "key" | "cert" | "cas">): CredentialsSource {
  return () => ({ key: id.key, cert: id.cert, cas: id.cas });
}

interface Setup {
  server: TeleportTestServer;
  identity: ClientIdentity;
  /** The load balancer's CA and certificate (for 127.0.0.1). */
  lbCa: Pem;
  proxy: RoutingProxy;
}

async function setup(defer: Defer, opts: Partial<RoutingProxyOptions> = {}): Promise<Setup> {
  const server = await TeleportTestServer.start({ keyType: "ec" });
  defer(() => server.close());
  const identity = await server.issueClientIdentity();
  const lbCa = await makeCa("Load balancer CA", { keyType: "ec" });
  const lbPem = await issueCert(lbCa, {
    commonName: "127.0.0.1",
    ipAddresses: ["127.0.0.1"],
    usage: "server",
    keyType: "ec",
  });
  const proxy = await startRoutingProxy({
    expectedAlpn: authAlpnProtocol(server.clusterName),
    backend: { host: "127.0.0.1", port: server.port },
    loadBalancer: lbPem,
    pingIntervalMs: PING_INTERVAL_MS,
    ...opts,
  });
  defer(() => proxy.close());
  return { server, identity, lbCa, proxy };
}

/** connectAuth to the fake, only the load balancer's CA trusted for the outer TLS. */
async function dial(
  defer: Defer,
  s: Setup,
  opts: Partial<ConnectAuthOptions<Pinged>> = {},
) {
  const connected = await connectAuth(s.proxy.addr, source(s.identity), {
    clusterName: s.server.clusterName,
    env: {},
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe,
    proxyCas: [s.lbCa.cert],
    systemCas: () => [],
    ...opts,
  });
  defer(() => connected.result.client.close());
  return connected;
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  const until = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > until) assert.fail(`Not within ${WAIT_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

bounded(
  "behind an L7 load balancer: detected, WebSocket alpn-ping, TLS routing inside, pings answered",
  async (defer) => {
    const s = await setup(defer);
    const { channel, result } = await dial(defer, s);
    assert.equal(channel.plan.kind, "conn-upgrade");
    assert.match(
      channel.description,
      /^TLS routing through the proxy's connection upgrade \(WebSocket, ALPN teleport-auth@/,
    );
    assert.equal(result.ping.clusterName, s.server.clusterName);
    // Mutual TLS end to end: Auth saw the identity's certificate.
    assert.ok(s.server.peers.some((p) => p.serial === s.identity.serial));
    // Detected as Teleport's client detects it: /webapi/find, then the test dial.
    const paths = s.proxy.requests.map((r) => r.path);
    assert.ok(paths.includes("/webapi/find"), `requests: ${paths.join(", ")}`);
    const upgrade = s.proxy.requests.find((r) => r.path === "/webapi/connectionupgrade");
    assert.ok(upgrade, "no upgrade request");
    assert.equal(upgrade.method, "GET");
    assert.equal(upgrade.headers["upgrade"], "websocket");
    assert.match(upgrade.headers["connection"] ?? "", /upgrade/i);
    assert.equal(upgrade.headers["sec-websocket-protocol"], "alpn-ping");
    assert.equal(upgrade.headers["sec-websocket-version"], "13");
    assert.equal(upgrade.headers["host"], s.proxy.addr);
    // Inside the WebSocket: the TLS-routing ClientHello.
    const inner = s.proxy.hellos.find((h) => h.alpn[0] === authAlpnProtocol(s.server.clusterName));
    assert.deepEqual(inner?.alpn, [authAlpnProtocol(s.server.clusterName), "h2"]);
    assert.equal(inner?.serverName, TELEPORT_API_SERVER_NAME);
    assert.ok(s.proxy.upgrades.websocket >= 1);
    // The proxy pings (alpn-ping); ws answers with pongs, and the calls still work.
    await eventually("pongs for the proxy's pings", () => s.proxy.upgrades.pongs >= 3);
    assert.equal((await result.client.ping()).clusterName, s.server.clusterName);
    // Closing the client ends the upgraded connection at the proxy.
    result.client.close();
    await eventually("the upgraded connection closed", () => s.proxy.openForwards === 0);
  },
);

bounded(
  "TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE=legacy: Upgrade: alpn, a raw stream",
  async (defer) => {
    const s = await setup(defer);
    const { channel, result } = await dial(defer, s, {
      env: { TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE: "legacy" },
    });
    assert.equal(channel.plan.kind, "conn-upgrade");
    assert.match(channel.description, /\(legacy Upgrade: alpn, ALPN teleport-auth@/);
    assert.equal(result.ping.clusterName, s.server.clusterName);
    const upgrade = s.proxy.requests.find((r) => r.path === "/webapi/connectionupgrade");
    assert.equal(upgrade?.headers["upgrade"], "alpn");
    assert.equal(upgrade?.headers["x-teleport-upgrade"], "alpn");
    assert.equal(upgrade?.headers["sec-websocket-key"], undefined);
    assert.equal(s.proxy.upgrades.legacy, 1);
    assert.equal(s.proxy.upgrades.websocket, 0);
  },
);

bounded("TELEPORT_TLS_ROUTING_CONN_UPGRADE=<addr>=1 forces it without detection", async (defer) => {
  const s = await setup(defer);
  const env = { TELEPORT_TLS_ROUTING_CONN_UPGRADE: `0,${s.proxy.addr}=1` };
  const { channel } = await dial(defer, s, { env });
  assert.equal(channel.plan.kind, "conn-upgrade");
  assert.deepEqual(s.proxy.requests.map((r) => r.path), ["/webapi/connectionupgrade"]);
});

bounded("TELEPORT_TLS_ROUTING_CONN_UPGRADE=false: the upgrade is not tried", async (defer) => {
  const s = await setup(defer);
  const err = await rejection(
    dial(defer, s, { env: { TELEPORT_TLS_ROUTING_CONN_UPGRADE: "false" } }),
    DialError,
  );
  assert.deepEqual(err.attempts.map((a) => a.plan.kind), ["direct", "tls-routing"]);
  // The load balancer's certificate is not the cluster's: both plain routes say so.
  for (const a of err.attempts) {
    assert.match(
      a.reason,
      /server certificate (is not signed by|does not verify against) the identity's Teleport CA/,
    );
  }
  assert.deepEqual(s.proxy.requests, []);
});

bounded("a proxy with TLS routing off gets no upgrade", async (defer) => {
  const s = await setup(defer, { tlsRouting: false });
  const err = await rejection(dial(defer, s), DialError);
  assert.deepEqual(err.attempts.map((a) => a.plan.kind), ["direct", "tls-routing"]);
  assert.deepEqual(s.proxy.requests.map((r) => r.path), ["/webapi/find"]);
});

bounded(
  "an untrusted load balancer certificate: the upgrade is not tried, and the error says why",
  async (defer) => {
    const s = await setup(defer);
    const err = await rejection(dial(defer, s, { proxyCas: [] }), DialError);
    assert.deepEqual(err.attempts.map((a) => a.plan.kind), ["direct", "tls-routing"]);
    assert.match(
      err.message,
      new RegExp(
        `; TLS routing through the proxy's connection upgrade \\(WebSocket, ALPN teleport-auth@[0-9a-f]+` +
          `\\.teleport\\.cluster\\.local\\): not tried, GET /webapi/find at 127\\.0\\.0\\.1:${s.proxy.port} ` +
          `failed: its certificate is not signed by a trusted CA: neither the system roots nor the ` +
          `proxy CA file hold its issuer`,
      ),
    );
  },
);

bounded("the TLS inside the upgrade is verified against the identity's CAs", async (defer) => {
  const s = await setup(defer);
  const stranger = await makeCa("Another cluster", { keyType: "ec" });
  const err = await rejection(
    dial(defer, { ...s, identity: { ...s.identity, cas: [stranger.cert] } }, {
      env: { TELEPORT_TLS_ROUTING_CONN_UPGRADE: "1" },
    }),
    DialError,
  );
  const upgrade = err.attempts.find((a) => a.plan.kind === "conn-upgrade");
  assert.match(
    upgrade?.reason ?? "",
    /server certificate is not signed by the identity's Teleport CA/,
  );
});

bounded("a proxy without the upgrade endpoint answers 404, named in the error", async (defer) => {
  const s = await setup(defer, { connUpgrade: false });
  const err = await rejection(
    dial(defer, s, { env: { TELEPORT_TLS_ROUTING_CONN_UPGRADE: "yes" } }),
    DialError,
  );
  const upgrade = err.attempts.find((a) => a.plan.kind === "conn-upgrade");
  assert.match(
    upgrade?.reason ?? "",
    new RegExp(`127\\.0\\.0\\.1:${s.proxy.port} refused the connection upgrade: HTTP 404`),
  );
});
