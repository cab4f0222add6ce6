import assert from "node:assert/strict";
import { PromMetrics } from "./metrics.ts";
import { Readiness, startStatusServer } from "./server.ts";

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
    readiness.watchDown("stream lost: connection refused");
    ready = await get("/readyz");
    assert.equal(ready.status, 503);
    assert.match(ready.text, /stream lost: connection refused/);

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
