/**
 * The connection-upgrade route behind a real L7 proxy nobody here wrote:
 * nginx from Debian terminates TLS (a certificate from our test CA, trusted
 * through the proxy CA option on top of the system roots) and proxies
 * `/webapi/` over HTTP/1.1 with the upgrade headers, as its documentation
 * says to for WebSockets, to the routing fake, which routes the upgraded
 * stream by its ClientHello to the test Auth server. Detection, the
 * WebSocket (`alpn-ping`, pings answered through nginx) and the legacy
 * `Upgrade: alpn` are checked end to end.
 *
 * nginx is started here (temporary prefix and config, loopback ports,
 * `-g 'daemon off;'`) and stopped by its pid. Without nginx the test is
 * skipped with one line saying so; CI installs it (`apt-get install -y
 * nginx-light`).
 */

import assert from "node:assert/strict";
import { type Defer, withTeardown } from "./bounded.ts";
import { type GrpcTeleportClient, pingProbe } from "../src/teleport/client.ts";
import { authAlpnProtocol, connectAuth, type Probe } from "../src/teleport/dial.ts";
import type { PingInfo } from "../src/teleport/types.ts";
import { issueCert, makeCa, type Pem } from "./pki.ts";
import { TeleportTestServer } from "./teleport_server.ts";
import { type RoutingProxy, startRoutingProxy } from "./routing_proxy.ts";

/** Upper bound of the test. */
const TEST_TIMEOUT_MS = 30_000;
/** Budget per route given to connectAuth. */
const ATTEMPT_TIMEOUT_MS = 8_000;
/** How long nginx may take to listen. */
const NGINX_START_MS = 10_000;
/** How long nginx may take to stop on SIGTERM before it is killed. */
const NGINX_STOP_MS = 5_000;
/** The fake proxy's WebSocket ping interval. */
const PING_INTERVAL_MS = 50;
/** How long to wait for something the fake proxy counts. */
const WAIT_MS = 5_000;

/** Where Debian puts nginx, or wherever PATH has one. */
function findNginx(): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/nginx`).isFile) return `${dir}/nginx`;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

const NGINX = findNginx();

interface Pinged {
  client: GrpcTeleportClient;
  ping: PingInfo;
}

const probe: Probe<Pinged> = pingProbe;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

/** nginx terminating TLS on 127.0.0.1, `/webapi/` proxied to `upstreamPort` as the docs say for WebSockets. */
async function startNginx(defer: Defer, lb: Pem, upstreamPort: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-nginx-" });
  defer(() => Deno.remove(dir, { recursive: true }));
  await Deno.writeTextFile(`${dir}/lb.crt`, lb.cert);
  await Deno.writeTextFile(`${dir}/lb.key`, lb.key);
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/lb.crt;
    ssl_certificate_key ${dir}/lb.key;
    location /webapi/ {
      proxy_pass http://127.0.0.1:${upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 60s;
    }
  }
}
`,
  );
  const child = new Deno.Command(NGINX!, {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`, "-g", "daemon off;"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  defer(async () => {
    const stopped = child.status;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, NGINX_STOP_MS);
    await stopped;
    clearTimeout(timer);
    await stderr;
  });
  const until = Date.now() + NGINX_START_MS;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      break;
    } catch {
      if (Date.now() > until) {
        const log = await Deno.readTextFile(`${dir}/error.log`).catch(() => "");
        assert.fail(`nginx did not listen on ${port} within ${NGINX_START_MS} ms: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return `127.0.0.1:${port}`;
}

async function eventually(what: string, check: () => boolean): Promise<void> {
  const until = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > until) assert.fail(`Not within ${WAIT_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name: NGINX
    ? "connection upgrade through nginx terminating TLS: detected, WebSocket with pings, legacy"
    : "connection upgrade through nginx: SKIPPED, nginx is not installed (apt-get install -y nginx-light)",
  ignore: !NGINX,
  // grpc-js arms reconnect timers for the routes that lost (see teleport_client_test.ts).
  sanitizeOps: false,
  fn: () =>
    withTeardown(TEST_TIMEOUT_MS, async (defer) => {
      const server = await TeleportTestServer.start({ keyType: "ec" });
      defer(() => server.close());
      const identity = await server.issueClientIdentity();
      const lbCa = await makeCa("Load balancer CA", { keyType: "ec" });
      const lb = await issueCert(lbCa, {
        commonName: "127.0.0.1",
        ipAddresses: ["127.0.0.1"],
        usage: "server",
        keyType: "ec",
      });
      const proxy: RoutingProxy = await startRoutingProxy({
        expectedAlpn: authAlpnProtocol(server.clusterName),
        backend: { host: "127.0.0.1", port: server.port },
        pingIntervalMs: PING_INTERVAL_MS,
      });
      defer(() => proxy.close());
      const addr = await startNginx(defer, lb, proxy.port);

      const dial = (env: Record<string, string>) =>
        connectAuth(addr, () => ({ key: identity.key, cert: identity.cert, cas: identity.cas }), {
          clusterName: server.clusterName,
          env,
          timeoutMs: ATTEMPT_TIMEOUT_MS,
          probe,
          // The system roots stay trusted (the default); nginx's CA comes on top.
          proxyCas: [lbCa.cert],
        });

      // WebSocket, detected: nginx answers the test dial's teleport-reversetunnel with no ALPN.
      const ws = await dial({});
      assert.equal(ws.channel.plan.kind, "conn-upgrade", JSON.stringify(ws.failedAttempts));
      assert.equal(ws.result.ping.clusterName, server.clusterName);
      assert.ok(server.peers.some((p) => p.serial === identity.serial));
      const upgrade = proxy.requests.find((r) => r.path === "/webapi/connectionupgrade");
      assert.equal(upgrade?.headers["upgrade"], "websocket");
      assert.equal(upgrade?.headers["connection"], "upgrade");
      assert.equal(upgrade?.headers["sec-websocket-protocol"], "alpn-ping");
      assert.ok(proxy.requests.some((r) => r.path === "/webapi/find"));
      await eventually("pongs through nginx", () => proxy.upgrades.pongs >= 3);
      assert.equal((await ws.result.client.ping()).clusterName, server.clusterName);
      ws.result.client.close();
      await eventually("the upgraded connection closed", () => proxy.openForwards === 0);

      // Legacy Upgrade: alpn through the same nginx.
      const legacy = await dial({ TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE: "legacy" });
      defer(() => legacy.result.client.close());
      assert.equal(legacy.channel.plan.kind, "conn-upgrade");
      assert.equal(legacy.result.ping.clusterName, server.clusterName);
      assert.equal(proxy.upgrades.legacy, 1);
      const legacyRequest = proxy.requests.findLast((r) => r.path === "/webapi/connectionupgrade");
      assert.equal(legacyRequest?.headers["upgrade"], "alpn");
    }),
});
