/**
 * Issue "Operations", signals and status: the plugin as a child process
 * (`deno run main.ts start`, as systemd runs it) stopped with SIGTERM or
 * SIGINT in the middle of a send, interrupted twice, and reloaded with
 * SIGHUP; and the status listener (`/healthz`, `/readyz`, `/metrics`)
 * through an auth server restart.
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
  type ChildPlugin,
  type Cluster,
  eventually,
  killPlugin,
  runInProcess,
  spawnPlugin,
  startCluster,
  withTimeout,
} from "./harness.ts";
import type { FakeSmtpOptions } from "./smtp_server.ts";
import { emailKey } from "./mailbox.ts";

/** Upper bound of one test; a hang fails instead of blocking the suite. */
const TEST_TIMEOUT_MS = 30_000;
/** How long a stopping plugin may take once its last send is answered. */
const EXIT_WAIT_MS = 10_000;

const OPS = "ops@example.com";
const BOB = "bob@example.com";

function ops(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `ops: ${name}`, fn: () => withTimeout(fn(), TEST_TIMEOUT_MS, name) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a cluster and the plugin as a child process, waits until it is
 * ready, runs `fn`, then kills what is left and tears everything down.
 */
async function withChild(
  smtp: Partial<FakeSmtpOptions>,
  fn: (c: Cluster, plugin: ChildPlugin, exited: () => boolean) => Promise<void>,
) {
  const cluster = await startCluster({ smtp });
  let plugin: ChildPlugin | undefined;
  try {
    plugin = spawnPlugin(await cluster.writeConfig());
    let done = false;
    plugin.status.then(() => (done = true));
    await plugin.waitFor(/Plugin is ready/);
    await fn(cluster, plugin, () => done);
  } finally {
    if (plugin) await killPlugin(plugin);
    await cluster.close();
  }
}

function createRequest(c: Cluster, reviewers: string[] = [BOB]): string {
  return c.teleport.createRequest({
    user: "alice",
    roles: ["editor"],
    suggestedReviewers: reviewers,
  })
    .Metadata!.Name!;
}

function threadsOf(c: Cluster, id: string): string[] {
  const text = c.teleport.pluginData(id)?.email_threads ?? "";
  return text === "" ? [] : text.split(",").map((t) => t.split("/")[0]!).sort();
}

// ---------------------------------------------------------------------------

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  ops(
    `${signal} mid-send: no new events taken, the send finishes and is recorded, exit 0`,
    async () => {
      await withChild({ stallRecipients: [BOB] }, async (c, plugin, exited) => {
        const id = createRequest(c);
        await c.smtp.waitFor(1);
        await eventually(() => c.smtp.stalledCount === 1, 5_000, "the send to bob stalled");
        plugin.child.kill(signal);
        await plugin.waitFor(new RegExp(`${signal} received`));
        // Created after the signal: a stopping plugin does not take it.
        const late = createRequest(c, []);
        await plugin.waitFor(/Finishing 1 event\(s\) in flight/);
        assert.equal(exited(), false, "the plugin waits for its in-flight send");
        c.smtp.release();
        const status = await withTimeout(plugin.status, EXIT_WAIT_MS, "exit after release");
        assert.equal(status.code, 0, plugin.output());
        assert.deepEqual(c.smtp.messages.map(emailKey).sort(), [
          `${BOB} new ${id}`,
          `${OPS} new ${id}`,
        ]);
        assert.deepEqual(threadsOf(c, id), [BOB, OPS], "both threads recorded");
        assert.equal(c.teleport.pluginData(id)?.email_claim, undefined, "claim released");
        assert.equal(c.teleport.pluginData(late), undefined, "nothing done for the late request");
        assert.match(plugin.output(), /INFO +Stopped/);
      });
    },
  );
}

ops("a second SIGINT while draining exits at once with 130", async () => {
  await withChild({ stallRecipients: [BOB] }, async (c, plugin, exited) => {
    const id = createRequest(c);
    await c.smtp.waitFor(1);
    await eventually(() => c.smtp.stalledCount === 1, 5_000, "the send to bob stalled");
    plugin.child.kill("SIGINT");
    await plugin.waitFor(/Finishing 1 event\(s\) in flight/);
    assert.equal(exited(), false, "still draining after the first SIGINT");
    const sentAt = Date.now();
    plugin.child.kill("SIGINT");
    const status = await withTimeout(plugin.status, 3_000, "exit after the second SIGINT");
    assert.equal(status.code, 130, plugin.output());
    assert.ok(Date.now() - sentAt < 2_000, "at once, without waiting for the stalled send");
    // The stalled message died with the process's connection: never accepted.
    await eventually(() => c.smtp.stalledCount === 0, 5_000, "stalled session closed");
    c.smtp.release();
    assert.deepEqual(c.smtp.messages.map(emailKey), [`${OPS} new ${id}`]);
    assert.deepEqual(threadsOf(c, id), [OPS], "only the sent email is recorded");
  });
});

ops("SIGHUP reloads the identity (new serial logged) and the plugin keeps running", async () => {
  await withChild({}, async (c, plugin, _exited) => {
    const before = createRequest(c, []);
    await c.smtp.waitFor(1);
    const serial = "5eed0123abcd";
    await c.teleport.writeIdentity(c.identityPath, { serial });
    plugin.child.kill("SIGHUP");
    await plugin.waitFor(
      new RegExp(`Identity reloaded \\(SIGHUP\\): certificate serial ${serial}`, "i"),
    );
    // An unchanged file: reloading again changes nothing and stops nothing.
    plugin.child.kill("SIGHUP");
    await plugin.waitFor(/Identity reloaded \(SIGHUP\): unchanged/);
    // Still serving after the reload: systemctl reload does not stop the service.
    const after = createRequest(c, []);
    await c.smtp.waitFor(2);
    assert.deepEqual(c.smtp.messages.map(emailKey), [
      `${OPS} new ${before}`,
      `${OPS} new ${after}`,
    ]);
    plugin.child.kill("SIGTERM");
    const status = await withTimeout(plugin.status, EXIT_WAIT_MS, "exit after SIGTERM");
    assert.equal(status.code, 0, plugin.output());
  });
});

// ---------------------------------------------------------------------------
// The status listener

/** Parses Prometheus text into `name{label="v",…}` (labels sorted) → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`).sort().join(",");
    out.set(labels ? `${m[1]}{${labels}}` : m[1]!, Number(m[3]));
  }
  return out;
}

ops(
  "status: healthz, readyz through an auth server restart, metrics that match the mailbox",
  async () => {
    const c = await startCluster();
    const config = await c.writeConfig({ extra: `[status]\nlisten_addr = "127.0.0.1:0"\n` });
    const plugin = runInProcess(config);
    try {
      const addr = await withTimeout(plugin.statusAddr, 10_000, "status listener");
      assert.match(addr, /^127\.0\.0\.1:\d+$/);
      const get = async (path: string) => {
        const response = await fetch(`http://${addr}${path}`);
        return { status: response.status, body: await response.text() };
      };
      const readyz = async () => {
        const { status, body } = await get("/readyz");
        return { status, json: JSON.parse(body) as { status: string; reasons?: string[] } };
      };
      assert.equal((await get("/healthz")).status, 200);
      await plugin.ready;
      assert.deepEqual(await readyz(), { status: 200, json: { status: "ready" } });

      const first = createRequest(c);
      createRequest(c);
      await c.smtp.waitFor(4);
      await eventually(() => threadsOf(c, first).length === 2, 5_000, "threads recorded");
      c.teleport.approve(first, "ok");
      await c.smtp.waitFor(6);

      await c.teleport.stop();
      let down = await readyz();
      for (const end = Date.now() + 5_000; down.status === 200 && Date.now() < end;) {
        await sleep(20);
        down = await readyz();
      }
      assert.equal(down.status, 503, "not ready while the auth server is gone");
      assert.equal(down.json.status, "not ready");
      assert.ok(
        down.json.reasons?.some((r) => /watch stream/.test(r)),
        `a reason names the watch stream: ${JSON.stringify(down.json)}`,
      );
      assert.equal((await get("/healthz")).status, 200, "alive all the same");
      // Still not ready after several reconnect attempts failed.
      const lost = () => capturedLogs.filter((l) => /Watch stream lost/.test(l)).length;
      const lostBefore = lost();
      await eventually(() => lost() >= lostBefore + 3, 5_000, "three failed reconnects");
      assert.equal((await readyz()).status, 503);

      await c.teleport.restart();
      let up = await readyz();
      for (const end = Date.now() + 10_000; up.status !== 200 && Date.now() < end;) {
        await sleep(20);
        up = await readyz();
      }
      assert.deepEqual(up, { status: 200, json: { status: "ready" } }, "ready again");
      const third = createRequest(c, []);
      await c.smtp.waitFor(7);
      await eventually(() => threadsOf(c, third).length === 1, 5_000, "thread recorded");

      const metricsResponse = await get("/metrics");
      assert.equal(metricsResponse.status, 200);
      const metrics = parseMetrics(metricsResponse.body);
      const value = (key: string) => {
        assert.ok(metrics.has(key), `${key} in:\n${metricsResponse.body}`);
        return metrics.get(key)!;
      };
      const received = (kind: string) =>
        c.smtp.messages.filter((m) => emailKey(m).split(" ")[1] === kind).length;
      assert.equal(received("new"), 5);
      assert.equal(value('teleport_email_emails_sent_total{kind="new"}'), received("new"));
      assert.equal(value('teleport_email_emails_sent_total{kind="resolution"}'), 2);
      // Three requests created, one approved; reconcile work is not an event.
      assert.equal(value('teleport_email_events_processed_total{type="put"}'), 4);
      assert.equal(value("teleport_email_watch_reconnects_total"), 1, "one reconnect");
      const expiry = value("teleport_email_identity_expiry_seconds");
      assert.ok(expiry > 0 && expiry <= 86_400, `identity expiry ${expiry}`);
      assert.equal(value('teleport_email_send_duration_seconds_count{kind="new"}'), 5);
      assert.equal(value('teleport_email_send_duration_seconds_bucket{kind="new",le="+Inf"}'), 5);
      assert.ok(value('teleport_email_send_duration_seconds_sum{kind="new"}') > 0);
      assert.equal(await plugin.stop(), 0);
    } finally {
      await plugin.stop();
      await c.close();
    }
  },
);

ops("SIGTERM while starting (the mail server does not answer yet) exits 0 at once", async () => {
  const c = await startCluster();
  // Accepts connections and never greets: the mailer health check waits.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn);
  })();
  let plugin: ChildPlugin | undefined;
  try {
    const config = await c.writeConfig({
      smtpSection:
        `[smtp]\nhost = "127.0.0.1"\nport = ${silent.addr.port}\nstarttls_policy = "disabled"`,
    });
    plugin = spawnPlugin(config);
    await plugin.waitFor(/Connected to Teleport cluster/);
    await eventually(() => held.length > 0, 5_000, "the health check connected");
    const sentAt = Date.now();
    plugin.child.kill("SIGTERM");
    const status = await withTimeout(plugin.status, EXIT_WAIT_MS, "exit after SIGTERM");
    assert.equal(status.code, 0, plugin.output());
    assert.ok(Date.now() - sentAt < 3_000, "without waiting for the mail server");
    assert.doesNotMatch(plugin.output(), /ERROR/);
  } finally {
    if (plugin) await killPlugin(plugin);
    silent.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
    await c.close();
  }
});
