import assert from "node:assert/strict";
import { PromMetrics } from "./metrics.ts";
import { MailError } from "../mail/mailer.ts";
import { Readiness, startStatusServer, statusListenerWarning } from "./server.ts";
import { parseHostPort } from "../lib/net_address.ts";

Deno.test("status endpoints: healthz, readyz flips with readiness, metrics in Prometheus text", async () => {
  const readiness = new Readiness();
  const metrics = new PromMetrics(() => 1_000_000);
  const server = startStatusServer("127.0.0.1:0", readiness, metrics);
  try {
    const get = async (path: string) => {
      const response = await fetch(`http://${server.addr}${path}`);
      return {
        status: response.status,
        text: await response.text(),
        type: response.headers.get("content-type"),
      };
    };
    assert.equal((await get("/healthz")).status, 200);

    let ready = await get("/readyz");
    assert.equal(ready.status, 503);
    assert.deepEqual(JSON.parse(ready.text).reasons, [
      "teleport: not connected yet",
      "mailer: not checked yet",
    ]);
    readiness.watchUp();
    readiness.mailerUp();
    ready = await get("/readyz");
    assert.equal(ready.status, 200);
    readiness.watchDown({ server: "teleport.example.com:443", code: "transient" });
    ready = await get("/readyz");
    assert.equal(ready.status, 503);
    assert.deepEqual(JSON.parse(ready.text).reasons, [
      "teleport: teleport.example.com:443 watch stream lost (transient)",
    ]);

    metrics.emailSent("new", 0.004);
    metrics.emailSent("new", 0.2);
    metrics.emailFailed("review", "transient");
    metrics.eventProcessed("put");
    metrics.watchReconnected();
    metrics.casConflict();
    metrics.setRetryQueueDepth(3);
    metrics.identityExpiry(() => new Date(1_000_000 + 3600_000));
    const m = await get("/metrics");
    assert.equal(m.status, 200);
    assert.match(m.type ?? "", /^text\/plain/);
    for (
      const line of [
        'teleport_email_emails_sent_total{kind="new"} 2',
        'teleport_email_emails_failed_total{kind="review",reason="transient"} 1',
        'teleport_email_send_duration_seconds_bucket{le="0.005",kind="new"} 1',
        'teleport_email_send_duration_seconds_count{kind="new"} 2',
        'teleport_email_events_processed_total{type="put"} 1',
        "teleport_email_watch_reconnects_total 1",
        "teleport_email_plugin_data_conflicts_total 1",
        "teleport_email_retry_queue_depth 3",
        "teleport_email_identity_expiry_seconds 3600",
      ]
    ) assert.ok(m.text.includes(line), `missing ${line} in:\n${m.text}`);
    assert.equal((await get("/nope")).status, 404);
  } finally {
    await server.close();
  }
});

Deno.test("readyz never carries a server's answer: a short code and the host", async () => {
  const secret = "AHRlbGVwb3J0AHMzY3JldA==";
  const readiness = new Readiness();
  readiness.watchUp();
  const server = startStatusServer("127.0.0.1:0", readiness, new PromMetrics(() => 0));
  try {
    const table: Array<
      [name: string, failure: Parameters<Readiness["mailerDown"]>[0], reason: string]
    > = [
      [
        "an SMTP 535 that echoes the AUTH PLAIN blob",
        new MailError(`SMTP send via "smtp.example.com:587" failed: 535 5.7.8 got ${secret}`, {
          transient: true,
          code: "EAUTH",
          status: 535,
          response: `535 5.7.8 got ${secret}`,
          server: "smtp.example.com:587",
        }),
        "mailer: smtp.example.com:587 transient failure (EAUTH)",
      ],
      [
        "a code that is not a code",
        { server: "api.mailgun.net", code: `HTTP 401 Basic ${secret}` },
        "mailer: api.mailgun.net transient failure (unknown)",
      ],
      [
        "a server with user info",
        { server: `https://api:${secret}@api.mailgun.net`, code: "HTTP_429" },
        "mailer: unknown transient failure (HTTP_429)",
      ],
      ["nothing known", {}, "mailer: unknown transient failure (unknown)"],
    ];
    for (const [name, failure, reason] of table) {
      readiness.mailerDown(failure);
      const response = await fetch(`http://${server.addr}/readyz`);
      const text = await response.text();
      assert.equal(response.status, 503, name);
      assert.deepEqual(JSON.parse(text).reasons, [reason], name);
      assert.ok(!text.includes(secret), `${name}: ${text}`);
    }
  } finally {
    await server.close();
  }
});

Deno.test("a status listener on every interface is warned about: it has no authentication", () => {
  const table: Array<[addr: string, warns: boolean]> = [
    ["0.0.0.0:9465", true],
    ["[::]:9465", true],
    ["[0:0:0:0:0:0:0:0]:9465", true],
    ["127.0.0.1:9465", false],
    ["[::1]:9465", false],
    ["localhost:9465", false],
    ["10.0.0.5:9465", false],
  ];
  for (const [addr, warns] of table) {
    const warning = statusListenerWarning(addr);
    assert.equal(warning !== undefined, warns, addr);
    if (warning !== undefined) {
      assert.match(warning, new RegExp(`^Status listener on ${addr.replace(/[[\].]/g, "\\$&")} `));
      assert.match(warning, /every network interface/);
      assert.match(warning, /no authentication/);
    }
  }
});

const HAS_CURL = await new Deno.Command("curl", { args: ["--version"], stdout: "null" }).output()
  .then((o) => o.success, () => false);

Deno.test({
  name: "status endpoints through curl: GET, HEAD, other methods refused, a bad request line",
  ignore: !HAS_CURL,
  async fn() {
    const readiness = new Readiness();
    const server = startStatusServer("127.0.0.1:0", readiness, new PromMetrics(() => 0));
    const curl = async (...args: string[]) => {
      const out = await new Deno.Command("curl", {
        args: ["-sS", "-o", "-", "-w", "\n%{http_code}", ...args],
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      const at = text.lastIndexOf("\n");
      return { body: text.slice(0, at), code: Number(text.slice(at + 1)) };
    };
    try {
      const url = `http://${server.addr}`;
      assert.deepEqual(await curl(`${url}/healthz`), { body: '{"status":"ok"}\n', code: 200 });
      assert.deepEqual(await curl("-I", `${url}/readyz`).then((r) => r.code), 503);
      assert.equal((await curl("--http1.0", `${url}/metrics`)).code, 200);
      assert.equal((await curl("-X", "POST", "-d", "x", `${url}/healthz`)).code, 405);
      assert.equal((await curl(`${url}/healthz?probe=1`)).code, 200);
      assert.equal((await curl("-H", `X-Big: ${"a".repeat(9000)}`, `${url}/healthz`)).code, 431);
    } finally {
      await server.close();
    }
  },
});

/** Opens a connection to `addr` and writes `text` without finishing the request. */
async function halfRequest(addr: string, text: string): Promise<Deno.Conn> {
  const { host, port } = parseHostPort(addr)!;
  const conn = await Deno.connect({ hostname: host, port });
  await conn.write(new TextEncoder().encode(text));
  return conn;
}

/** Whether the server closed `conn`: a read that ends (EOF or reset) instead of data. */
async function closedByServer(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return true;
      if (!new TextDecoder().decode(buf.subarray(0, n)).startsWith("HTTP/1.1 ")) return false;
    }
  } catch {
    return true;
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

/** A listener with `timeoutMs` (and room for 3 connections) for `fn`, stopped however it ends. */
async function withListener(timeoutMs: number, fn: (addr: string) => Promise<void>) {
  const limits = { maxConnections: 3, maxHeadBytes: 8 * 1024, timeoutMs };
  const server = startStatusServer(
    "127.0.0.1:0",
    new Readiness(),
    new PromMetrics(() => 0),
    limits,
  );
  try {
    await fn(server.addr);
  } finally {
    await server.close();
  }
}

Deno.test("a half-sent request head is closed once its time is up", async () => {
  await withListener(200, async (addr) => {
    const head = await halfRequest(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert.equal(await closedByServer(head), true);
  });
});

Deno.test("connections held open cannot lock the probes out: when full, the oldest one still sending its head goes", async () => {
  await withListener(600_000, async (addr) => {
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await halfRequest(addr, "GET /"));
    for (let probe = 0; probe < 3; probe++) {
      const response = await fetch(`http://${addr}/healthz`);
      assert.equal(response.status, 200, `probe ${probe} answered`);
      await response.body?.cancel();
    }
    // The first probe found the listener full: the oldest held connection went for it (its
    // timeout is 10 minutes away); the next probes found room.
    assert.equal(await closedByServer(held[0]!), true);
    for (const conn of held.slice(1)) conn.close();
  });
});

Deno.test("a request head with bare line feeds is answered", async () => {
  await withListener(5_000, async (addr) => {
    const conn = await halfRequest(addr, "GET /healthz HTTP/1.0\n\n");
    const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(answer, /\r\n\r\n\{"status":"ok"\}\n$/);
  });
});

Deno.test("stopping the listener does not wait for a request body that never comes", async () => {
  const limits = { maxConnections: 64, maxHeadBytes: 8 * 1024, timeoutMs: 600_000 };
  const server = startStatusServer(
    "127.0.0.1:0",
    new Readiness(),
    new PromMetrics(() => 0),
    limits,
  );
  const body = await halfRequest(
    server.addr,
    "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
  );
  const idle = await halfRequest(server.addr, "GET /healthz HTTP/1.1\r\n");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<"hung">((r) => (timer = setTimeout(() => r("hung"), 5_000)));
  try {
    assert.equal(await Promise.race([server.close().then(() => "stopped"), guard]), "stopped");
  } finally {
    clearTimeout(timer);
  }
  assert.equal(await closedByServer(body), true);
  assert.equal(await closedByServer(idle), true);
});
