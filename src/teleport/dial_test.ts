import assert from "node:assert/strict";
import { withTeardown } from "../../tests/bounded.ts";
import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import {
  authAlpnProtocol,
  authChannel,
  CHANNEL_OPTIONS,
  connectAuth,
  type CredentialsSource,
  DialError,
  DIRECT_PLAN,
  type Env,
  type Goaway,
  type Probe,
  TELEPORT_API_SERVER_NAME,
  type TlsCredentials,
  tlsRoutingPlan,
} from "./dial.ts";
import { issueCert, makeCa, type Pem } from "../../tests/pki.ts";
import { parseClientHello, startRoutingProxy } from "../../tests/routing_proxy.ts";
import { startConnectProxy } from "../../tests/connect_proxy.ts";

/** Upper bound for any one test. */
const TEST_TIMEOUT_MS = 20_000;
/** Deadline of one test Ping. */
const PING_DEADLINE_MS = 5_000;
/** Per-plan budget given to connectAuth in tests. */
const ATTEMPT_TIMEOUT_MS = 5_000;

const CLUSTER = "teleport.example.com";
const NO_ENV: Env = {};

// --- PKI: one cluster CA, and a stranger's ---------------------------------
const ca = await makeCa(CLUSTER, { keyType: "ec" });
const otherCa = await makeCa("other.example.com", { keyType: "ec" });
const serverPem = await issueCert(ca, {
  commonName: "auth",
  dnsNames: [TELEPORT_API_SERVER_NAME],
  usage: "server",
  keyType: "ec",
});
const clientA = await issueCert(ca, {
  commonName: "email",
  usage: "client",
  serial: "a0a0a0",
  keyType: "ec",
});
const clientB = await issueCert(ca, {
  commonName: "email",
  usage: "client",
  serial: "b0b0b0",
  keyType: "ec",
});
const strangerClient = await issueCert(otherCa, {
  commonName: "email",
  usage: "client",
  keyType: "ec",
});
const strangerServer = await issueCert(otherCa, {
  commonName: "auth",
  dnsNames: [TELEPORT_API_SERVER_NAME],
  usage: "server",
  keyType: "ec",
});
const misnamedServer = await issueCert(ca, {
  commonName: "auth",
  dnsNames: ["auth.example.com"],
  usage: "server",
  keyType: "ec",
});

function identity(pem: Pem, cas: string[] = [ca.cert]): TlsCredentials {
  return { key: pem.key, cert: pem.cert, cas };
}
const fixed = (creds: TlsCredentials): CredentialsSource => () => creds;

// --- helpers ---------------------------------------------------------------

/** Runs `fn` with a deadline and a teardown stack run however it ends. */
function bounded(name: string, fn: (defer: (f: () => unknown) => void) => Promise<void>): void {
  Deno.test(name, () => withTeardown(TEST_TIMEOUT_MS, fn));
}

/** Time for a closed client's GOAWAY and socket close to reach the server before anything else goes. */
const CLOSE_SETTLE_MS = 25;
/** How long a server may drain before it is forced down. */
const SERVER_DRAIN_MS = 500;

/**
 * Closes a client and lets its connection wind down. Teardown goes gently on
 * purpose: in one process, grpc-js servers and clients shutting down over
 * each other's live sessions can still trip Deno 2.9.6's nghttp2 assertion
 * (rarely; the client side of that bug is guarded in _goaway_guard_deno_36788.ts).
 */
async function closeClient(client: grpc.Client): Promise<void> {
  client.close();
  await new Promise((r) => setTimeout(r, CLOSE_SETTLE_MS));
}

/** Stops a server: graceful first (no sessions are left once clients closed), forced after a while. */
function stopServer(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, SERVER_DRAIN_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const passthrough = (b: Buffer) => b;
const PING_PATH = "/teleport.test.Echo/Ping";
const ECHO_SERVICE: grpc.ServiceDefinition = {
  ping: {
    path: PING_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  },
};

interface AuthServer {
  addr: string;
  port: number;
  server: grpc.Server;
  /** Serial numbers (lowercase hex) of the client certificates seen, per call. */
  serials: string[];
}

/**
 * A gRPC server with mutual TLS (client certificates checked against `ca`)
 * whose Ping answers with the caller's certificate serial.
 */
async function startAuthServer(
  defer: (f: () => unknown) => void,
  opts: { pem?: Pem; answer?: grpc.ServiceError } = {},
): Promise<AuthServer> {
  const pem = opts.pem ?? serverPem;
  const serials: string[] = [];
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    ping: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      if (opts.answer) return done(opts.answer);
      const serial = call.getAuthContext().sslPeerCertificate?.serialNumber.toLowerCase() ?? "";
      serials.push(serial);
      done(null, Buffer.from(serial));
    },
  });
  const creds = grpc.ServerCredentials.createSsl(
    Buffer.from(ca.cert),
    [{ cert_chain: Buffer.from(pem.cert), private_key: Buffer.from(pem.key) }],
    true,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (err, p) => err ? reject(err) : resolve(p))
  );
  defer(() => stopServer(server));
  return { addr: `127.0.0.1:${port}`, port, server, serials };
}

function ping(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      PING_PATH,
      passthrough,
      passthrough,
      Buffer.alloc(0),
      { deadline: Date.now() + PING_DEADLINE_MS },
      (err, value) => err ? reject(err) : resolve(value?.toString() ?? ""),
    );
  });
}

/** The probe the tests hand to connectAuth: Ping, keeping the client on success. */
const pingProbe: Probe<{ client: grpc.Client; serial: string }> = async (channel, signal) => {
  const client = new grpc.Client(channel.target, channel.credentials, channel.options);
  const onAbort = () => client.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return { client, serial: await ping(client) };
  } catch (e) {
    client.close();
    throw e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
};

/** A TCP port on 127.0.0.1 with nothing listening. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function rejectsWith(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a rejection");
}

// --- pure parts ------------------------------------------------------------

Deno.test("CHANNEL_OPTIONS: keepalive ≥ 60 s, grpc-js's own proxy logic off", () => {
  assert.ok((CHANNEL_OPTIONS["grpc.keepalive_time_ms"] as number) >= 60_000);
  assert.equal(CHANNEL_OPTIONS["grpc.keepalive_timeout_ms"], 20_000);
  assert.equal(CHANNEL_OPTIONS["grpc.enable_http_proxy"], 0);
  assert.ok(Object.isFrozen(CHANNEL_OPTIONS));
});

Deno.test("authChannel: a proxied channel dials the proxy and names Teleport", () => {
  const env = { HTTPS_PROXY: "http://proxy.corp:3128" };
  const ch = authChannel("auth.example.com:3025", DIRECT_PLAN, fixed(identity(clientA)), env);
  assert.equal(ch.target, "proxy.corp:3128");
  assert.equal(ch.options["grpc.default_authority"], "auth.example.com:3025");
  assert.equal(ch.description, "direct to Auth (ALPN h2) via HTTPS proxy http://proxy.corp:3128");
  const plain = authChannel(
    "auth.example.com:3025",
    tlsRoutingPlan(CLUSTER),
    fixed(identity(clientA)),
    {},
  );
  assert.equal(plain.target, "auth.example.com:3025");
  assert.equal(plain.proxy, undefined);
  assert.match(
    plain.description,
    /^TLS routing through the proxy \(ALPN teleport-auth@[0-9a-f]+\.teleport\.cluster\.local\)$/,
  );
});

// --- the ClientHello parser of the routing fake -------------------------------

/** The first bytes a Deno TLS client sends, captured on a raw listener. */
async function captureClientHello(alpn: string[]): Promise<Buffer> {
  const sockets: net.Socket[] = [];
  let resolveHello!: (b: Buffer) => void;
  const hello = new Promise<Buffer>((r) => resolveHello = r);
  const server = net.createServer((s) => {
    sockets.push(s);
    let buf = Buffer.alloc(0);
    s.on("error", () => {});
    s.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (parseClientHello(buf)) resolveHello(buf);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const client = tls.connect({
    host: "127.0.0.1",
    port: (server.address() as net.AddressInfo).port,
    servername: TELEPORT_API_SERVER_NAME,
    ALPNProtocols: alpn,
    ca: [ca.cert],
  });
  client.on("error", () => {});
  try {
    return await hello;
  } finally {
    client.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
}

Deno.test("parseClientHello reads ALPN and SNI, waits for whole records, refuses junk", async () => {
  const alpn = [authAlpnProtocol(CLUSTER), "h2"];
  const hello = await captureClientHello(alpn);
  assert.deepEqual(parseClientHello(hello), { alpn, serverName: TELEPORT_API_SERVER_NAME });
  for (const cut of [0, 3, 5, 40, hello.length - 1]) {
    assert.equal(parseClientHello(hello.subarray(0, cut)), undefined, `cut at ${cut}`);
  }
  // The same message split over two handshake records.
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const half = 50;
  const record = (part: Uint8Array) =>
    Buffer.concat([Buffer.from([22, 3, 1, part.length >> 8, part.length & 0xff]), part]);
  const split = Buffer.concat([record(body.subarray(0, half)), record(body.subarray(half))]);
  assert.equal(parseClientHello(split.subarray(0, 5 + half)), undefined);
  assert.deepEqual(parseClientHello(split)?.alpn, alpn);
  assert.throws(() => parseClientHello(Buffer.from("GET / HTTP/1.1\r\n\r\n")), SyntaxError);
  assert.throws(
    () => parseClientHello(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])),
    /Not a ClientHello/,
  );
});

// --- over the wire -----------------------------------------------------------

bounded(
  "grpc-js calls our _createSecureConnector: direct mutual TLS with ALPN h2",
  async (defer) => {
    // If this fails after a grpc-js upgrade, _grpc_connector.ts's hook is dead: port it.
    assert.equal(
      typeof (grpc.credentials.createSsl() as unknown as Record<string, unknown>)
        ._createSecureConnector,
      "function",
      "grpc-js no longer has ChannelCredentials._createSecureConnector: _grpc_connector.ts must be ported",
    );
    const auth = await startAuthServer(defer);
    const ch = authChannel(auth.addr, DIRECT_PLAN, fixed(identity(clientA)), NO_ENV);
    const client = new grpc.Client(ch.target, ch.credentials, ch.options);
    defer(() => closeClient(client));
    assert.equal(await ping(client), "a0a0a0");
    const stats = ch.credentials.stats;
    assert.ok(
      stats.connectors >= 1,
      "grpc-js did not call _createSecureConnector: _grpc_connector.ts must be ported",
    );
    assert.equal(stats.handshakes, 1, "grpc-js did not connect through our connector");
    assert.equal(stats.alpnProtocol, "h2");
    assert.equal(stats.lastError, undefined);
  },
);

bounded("connectAuth: direct plan, the probe's result and channel come back", async (defer) => {
  const auth = await startAuthServer(defer);
  const { channel, result, failedAttempts } = await connectAuth(
    auth.addr,
    fixed(identity(clientA)),
    {
      clusterName: CLUSTER,
      env: NO_ENV,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    },
  );
  defer(() => closeClient(result.client));
  assert.equal(channel.plan.kind, "direct");
  assert.equal(result.serial, "a0a0a0");
  assert.deepEqual(failedAttempts, []);
  // The same client keeps working.
  assert.equal(await ping(result.client), "a0a0a0");
});

bounded("connectAuth: TLS routing through a proxy that routes on the auth ALPN", async (defer) => {
  const auth = await startAuthServer(defer);
  const proxy = await startRoutingProxy({
    expectedAlpn: authAlpnProtocol(CLUSTER),
    backend: { host: "127.0.0.1", port: auth.port },
  });
  defer(() => proxy.close());
  // A custom port tries direct first: the proxy refuses ALPN h2, then routing works.
  const { channel, result, failedAttempts } = await connectAuth(
    proxy.addr,
    fixed(identity(clientA)),
    {
      clusterName: CLUSTER,
      env: NO_ENV,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    },
  );
  defer(() => closeClient(result.client));
  assert.equal(channel.plan.kind, "tls-routing");
  assert.equal(result.serial, "a0a0a0", "mutual TLS end to end: auth saw our client certificate");
  assert.equal(failedAttempts.length, 1);
  assert.equal(failedAttempts[0]?.plan.kind, "direct");
  assert.match(
    failedAttempts[0]?.reason ?? "",
    /does not accept ALPN protocol h2|closed the connection during the TLS handshake/,
  );
  const routed = proxy.hellos.filter((h) => h.alpn[0] === authAlpnProtocol(CLUSTER));
  assert.ok(routed.length >= 1, "the proxy never saw the auth ALPN first");
  assert.deepEqual(routed[0]?.alpn, [authAlpnProtocol(CLUSTER), "h2"]);
  assert.equal(routed[0]?.serverName, TELEPORT_API_SERVER_NAME);
  assert.ok(proxy.counts.forwarded >= 1);
});

bounded("a client certificate from another CA is refused with a clear error", async (defer) => {
  const auth = await startAuthServer(defer);
  const err = await rejectsWith(connectAuth(auth.addr, fixed(identity(strangerClient)), {
    env: NO_ENV,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe: pingProbe,
  }));
  assert.ok(err instanceof DialError);
  assert.match(
    err.message,
    /^Cannot reach Teleport at "127\.0\.0\.1:\d+": tried direct to Auth \(ALPN h2\): /,
  );
  assert.match(err.message, /refused the identity's client certificate/);
  assert.equal(auth.serials.length, 0);
});

bounded("a server certificate from another CA is refused with a clear error", async (defer) => {
  const auth = await startAuthServer(defer, { pem: strangerServer });
  const err = await rejectsWith(connectAuth(auth.addr, fixed(identity(clientA)), {
    env: NO_ENV,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe: pingProbe,
  }));
  assert.ok(err instanceof DialError);
  assert.match(
    err.message,
    /direct to Auth \(ALPN h2\): server certificate is not signed by the identity's Teleport CA/,
  );
});

bounded(
  "only the identity's CAs are trusted, and the name must be teleport.cluster.local",
  async (defer) => {
    // The stranger's CA in the identity, the server signed by the cluster CA.
    const auth = await startAuthServer(defer);
    const err = await rejectsWith(connectAuth(auth.addr, fixed(identity(clientA, [otherCa.cert])), {
      env: NO_ENV,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    }));
    assert.match(err.message, /server certificate is not signed by the identity's Teleport CA/);

    const misnamed = await startAuthServer(defer, { pem: misnamedServer });
    const err2 = await rejectsWith(connectAuth(misnamed.addr, fixed(identity(clientA)), {
      env: NO_ENV,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    }));
    assert.match(err2.message, /server certificate is not valid for teleport\.cluster\.local/);
  },
);

bounded("a server that does not negotiate h2 is refused", async (defer) => {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({
    key: serverPem.key,
    cert: serverPem.cert,
    ca: [ca.cert],
    requestCert: true,
    rejectUnauthorized: true,
    // No ALPNProtocols: the server picks nothing.
  }, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.write("\0\0\0\x04\0\0\0\0\0");
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  defer(() => new Promise((r) => server.close(r)));
  defer(() => sockets.forEach((s) => s.destroy()));
  const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const err = await rejectsWith(connectAuth(addr, fixed(identity(clientA)), {
    env: NO_ENV,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe: pingProbe,
  }));
  assert.match(
    err.message,
    /the server did not agree to HTTP\/2 over ALPN \(it chose "nothing"; offered h2\)/,
  );
});

bounded(
  "new connections present the newest certificate without rebuilding the client",
  async (defer) => {
    const auth = await startAuthServer(defer);
    const proxy = await startRoutingProxy({
      expectedAlpn: authAlpnProtocol(CLUSTER),
      backend: { host: "127.0.0.1", port: auth.port },
    });
    defer(() => proxy.close());
    let current = identity(clientA);
    const ch = authChannel(proxy.addr, tlsRoutingPlan(CLUSTER), () => current, NO_ENV);
    const client = new grpc.Client(ch.target, ch.credentials, ch.options);
    defer(() => closeClient(client));
    assert.equal(await ping(client), "a0a0a0");
    current = identity(clientB);
    // The live connection keeps its certificate...
    assert.equal(await ping(client), "a0a0a0");
    // ...until it is cut; the reconnect reads the source again.
    proxy.dropConnections();
    let serial = "";
    for (let i = 0; i < 20 && serial !== "b0b0b0"; i++) {
      serial = await ping(client).catch(() => "");
      if (serial !== "b0b0b0") await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(serial, "b0b0b0");
    assert.equal(ch.credentials.stats.handshakes, 2);
  },
);

bounded(
  "HTTPS_PROXY: both plans go through HTTP CONNECT to the Teleport address",
  async (defer) => {
    const auth = await startAuthServer(defer);
    const routing = await startRoutingProxy({
      expectedAlpn: authAlpnProtocol(CLUSTER),
      backend: { host: "127.0.0.1", port: auth.port },
    });
    defer(() => routing.close());
    // Names under .invalid never resolve: only the proxy can reach them.
    const connect = await startConnectProxy({
      route: (target) => ({
        host: "127.0.0.1",
        port: target.startsWith("proxy.") ? routing.port : auth.port,
      }),
    });
    defer(() => connect.close());
    const env = { HTTPS_PROXY: connect.url.replace("http://", "http://user:secret@") };

    const direct = await connectAuth("auth.teleport.invalid:3025", fixed(identity(clientA)), {
      env,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    });
    defer(() => closeClient(direct.result.client));
    assert.equal(direct.result.serial, "a0a0a0");
    assert.equal(direct.channel.proxy?.display, connect.url);

    const routed = await connectAuth("proxy.teleport.invalid:443", fixed(identity(clientB)), {
      clusterName: CLUSTER,
      env,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    });
    defer(() => closeClient(routed.result.client));
    assert.equal(routed.channel.plan.kind, "tls-routing");
    assert.equal(routed.result.serial, "b0b0b0");
    assert.deepEqual(
      connect.requests.map((r) => r.target),
      ["auth.teleport.invalid:3025", "proxy.teleport.invalid:443"],
    );
    assert.equal(connect.requests[0]?.authorization, "Basic " + btoa("user:secret"));
    assert.equal(routing.hellos[0]?.alpn[0], authAlpnProtocol(CLUSTER));
  },
);

bounded("NO_PROXY and loopback addresses bypass HTTPS_PROXY", async (defer) => {
  const auth = await startAuthServer(defer);
  const connect = await startConnectProxy({
    route: () => ({ host: "127.0.0.1", port: auth.port }),
  });
  defer(() => connect.close());

  // Loopback never goes through a proxy (as in Go).
  const local = await connectAuth(auth.addr, fixed(identity(clientA)), {
    env: { HTTPS_PROXY: connect.url },
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe: pingProbe,
  });
  defer(() => closeClient(local.result.client));
  assert.equal(local.result.serial, "a0a0a0");

  // A NO_PROXY match dials directly: the name does not resolve, and the proxy sees nothing.
  const err = await rejectsWith(
    connectAuth(`auth.teleport.invalid:${auth.port}`, fixed(identity(clientA)), {
      clusterName: CLUSTER,
      env: { https_proxy: connect.url, no_proxy: "localhost,.invalid" },
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    }),
  );
  assert.ok(err instanceof DialError);
  assert.equal(err.attempts.length, 2);
  assert.match(
    err.message,
    /direct to Auth \(ALPN h2\): cannot resolve the host of "auth\.teleport\.invalid:\d+"/,
  );
  assert.doesNotMatch(err.message, /via HTTPS proxy/);
  assert.deepEqual(connect.requests, []);
});

bounded("an HTTPS proxy refusing CONNECT is named in the error", async (defer) => {
  const connect = await startConnectProxy({ refuse: () => 403 });
  defer(() => connect.close());
  const viaProxyPort = await rejectsWith(
    connectAuth("proxy.teleport.invalid:443", fixed(identity(clientA)), {
      env: { HTTPS_PROXY: connect.url },
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    }),
  );
  assert.equal(
    viaProxyPort.message,
    `Cannot reach Teleport at "proxy.teleport.invalid:443": tried direct to Auth (ALPN h2) via ` +
      `HTTPS proxy ${connect.url}: HTTPS proxy ${connect.url} refused CONNECT to ` +
      `"proxy.teleport.invalid:443": 403 Forbidden; TLS routing through the proxy: not tried, ` +
      `the cluster name is unknown`,
  );
  // On Auth's port there is nothing else to try, so nothing to note.
  const viaAuthPort = await rejectsWith(
    connectAuth("auth.teleport.invalid:3025", fixed(identity(clientA)), {
      env: { HTTPS_PROXY: connect.url },
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    }),
  );
  assert.match(
    viaAuthPort.message,
    /refused CONNECT to "auth\.teleport\.invalid:3025": 403 Forbidden$/,
  );
});

bounded("when every plan fails, one error lists each attempt and why", async (defer) => {
  const port = await closedPort();
  const wrongCluster = await startRoutingProxy({
    expectedAlpn: authAlpnProtocol("another.example.com"),
    backend: { host: "127.0.0.1", port },
  });
  defer(() => wrongCluster.close());

  const refused = await rejectsWith(connectAuth(`127.0.0.1:${port}`, fixed(identity(clientA)), {
    clusterName: CLUSTER,
    env: NO_ENV,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe: pingProbe,
  }));
  assert.ok(refused instanceof DialError);
  assert.deepEqual(refused.attempts.map((a) => a.plan.kind), ["direct", "tls-routing"]);
  assert.equal(
    refused.message,
    `Cannot reach Teleport at "127.0.0.1:${port}": tried direct to Auth (ALPN h2): connection ` +
      `refused; TLS routing through the proxy (ALPN ${
        authAlpnProtocol(CLUSTER)
      }): connection refused`,
  );

  const closed = await rejectsWith(connectAuth(wrongCluster.addr, fixed(identity(clientA)), {
    clusterName: CLUSTER,
    env: NO_ENV,
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    probe: pingProbe,
  }));
  assert.ok(closed instanceof DialError);
  assert.equal(closed.attempts.length, 2);
  assert.match(
    closed.attempts[1]?.reason ?? "",
    /ALPN protocol teleport-auth@.*TLS routing is off or the ALPN protocol names another cluster|closed the connection during the TLS handshake \(a Teleport proxy/,
  );
});

bounded(
  "a stalled server costs one attempt's budget, and the half-open connection is cut",
  async (defer) => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => {
      sockets.add(s);
      s.resume(); // read (and drop) the ClientHello, or the client's FIN goes unnoticed
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    defer(() => new Promise((r) => silent.close(r)));
    defer(() => sockets.forEach((s) => s.destroy()));
    const addr = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const started = Date.now();
    const err = await rejectsWith(connectAuth(addr, fixed(identity(clientA)), {
      env: NO_ENV,
      timeoutMs: 300,
      probe: pingProbe,
    }));
    assert.ok(Date.now() - started < 3_000);
    assert.match(
      err.message,
      /direct to Auth \(ALPN h2\): no answer within 300 ms \(stalled in the TLS handshake\)/,
    );
    // Closing the probe's client destroyed the connector's socket.
    for (let i = 0; i < 20 && sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(sockets.size, 0, "the half-open connection was left behind");
  },
);

bounded(
  "a gRPC error from a reached server is the server's answer, not a dial failure",
  async (defer) => {
    const denied = Object.assign(new Error('access denied to perform action "read"'), {
      code: grpc.status.PERMISSION_DENIED,
      details: 'access denied to perform action "read"',
      metadata: new grpc.Metadata(),
    });
    const auth = await startAuthServer(defer, { answer: denied });
    const err = await rejectsWith(connectAuth(auth.addr, fixed(identity(clientA)), {
      clusterName: CLUSTER,
      env: NO_ENV,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      probe: pingProbe,
    }));
    assert.ok(!(err instanceof DialError));
    assert.equal((err as grpc.ServiceError).code, grpc.status.PERMISSION_DENIED);
  },
);

bounded("a failing credentials source fails the attempt with its reason", async (defer) => {
  const auth = await startAuthServer(defer);
  const err = await rejectsWith(connectAuth(auth.addr, () => {
    throw new Error('identity file "/x" is half-written');
  }, { env: NO_ENV, timeoutMs: ATTEMPT_TIMEOUT_MS, probe: pingProbe }));
  assert.match(
    err.message,
    /cannot read the identity's credentials: identity file "\/x" is half-written/,
  );
});

bounded("an aborted signal stops connectAuth with its reason", async (defer) => {
  const auth = await startAuthServer(defer);
  const ctl = new AbortController();
  ctl.abort(new Error("shutting down"));
  const err = await rejectsWith(connectAuth(auth.addr, fixed(identity(clientA)), {
    env: NO_ENV,
    probe: pingProbe,
    signal: ctl.signal,
  }));
  assert.equal(err.message, "shutting down");
});

// --- through the GOAWAY guard (denoland/deno#36788) ------------------------------

bounded(
  "a server's GOAWAY ends the connection without reaching nghttp2; the client reconnects",
  async (defer) => {
    const first = await startAuthServer(defer);
    const second = await startAuthServer(defer);
    const proxy = await startRoutingProxy({
      expectedAlpn: authAlpnProtocol(CLUSTER),
      backend: { host: "127.0.0.1", port: first.port },
    });
    defer(() => proxy.close());
    const goaways: Goaway[] = [];
    const ch = authChannel(proxy.addr, tlsRoutingPlan(CLUSTER), fixed(identity(clientA)), NO_ENV, {
      onGoaway: (g) => goaways.push(g),
    });
    const client = new grpc.Client(ch.target, ch.credentials, ch.options);
    defer(() => closeClient(client));
    assert.equal(await ping(client), "a0a0a0");

    // Without the guard, Deno 2.9.6 dies here about half the time (exit 134 or 139).
    proxy.setBackend({ host: "127.0.0.1", port: second.port });
    await new Promise<void>((resolve) => first.server.tryShutdown(() => resolve()));
    assert.deepEqual(goaways.map((g) => g.errorCode), [0]);
    assert.deepEqual(ch.credentials.stats.lastGoaway, goaways[0]);

    let serial = "";
    for (let i = 0; i < 20 && serial === ""; i++) {
      serial = await ping(client).catch(() => "");
      if (serial === "") await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(serial, "a0a0a0");
    assert.deepEqual(second.serials, ["a0a0a0"], "the same client reconnected, to the new backend");
  },
);

bounded("large responses stream through the guard intact", async (defer) => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    ping: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
      done(null, big),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createSsl(
        Buffer.from(ca.cert),
        [{ cert_chain: Buffer.from(serverPem.cert), private_key: Buffer.from(serverPem.key) }],
        true,
      ),
      (err, p) => err ? reject(err) : resolve(p),
    )
  );
  defer(() => stopServer(server));
  const ch = authChannel(`127.0.0.1:${port}`, DIRECT_PLAN, fixed(identity(clientA)), NO_ENV);
  const client = new grpc.Client(ch.target, ch.credentials, {
    ...ch.options,
    "grpc.max_receive_message_length": 8 * 1024 * 1024,
  });
  defer(() => closeClient(client));
  for (let i = 0; i < 3; i++) {
    const got = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        PING_PATH,
        passthrough,
        passthrough,
        Buffer.alloc(0),
        { deadline: Date.now() + PING_DEADLINE_MS },
        (err, value) => err || !value ? reject(err) : resolve(value),
      )
    );
    assert.equal(got.length, big.length);
    assert.ok(got.equals(big));
  }
});
