import assert from "node:assert/strict";
import { PromMetrics } from "./metrics.ts";
import { MailError } from "../mail/mailer.ts";
import { Readiness, startStatusServer, statusListenerWarning } from "./server.ts";

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
