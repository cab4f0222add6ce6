/**
 * The plugin against a Teleport whose HTTP/2, TLS and gRPC nobody here wrote:
 * grpc-go with Go's crypto/tls (mutual TLS, ALPN enforced), the stack of a
 * real Teleport's Auth Service (tests/teleport_go.ts). The plugin runs as an
 * operator runs it (`deno run -A main.ts start`). Checked: it gets ready, a
 * new request is emailed to its three recipients with two plugin-data
 * writes and no read of it; when the server ends the watch (UNAVAILABLE) and goes
 * away gracefully (GOAWAY, which the plugin logs) and comes back on the same
 * port, the plugin watches again and the next request is emailed too, and
 * nothing twice.
 *
 * The Go server is built here with the Go toolchain (`go` on PATH or in
 * /usr/local/go/bin; its module comes through the Go module proxy). Without
 * Go the test is skipped with one line saying so.
 */

import assert from "node:assert/strict";
import { withTeardown } from "./bounded.ts";
import { killPlugin, spawnPlugin, startCluster } from "./harness.ts";
import { buildGoTeleport, startGoTeleport } from "./teleport_go.ts";

/** Upper bound of the test, the Go build included. */
const TEST_TIMEOUT_MS = 120_000;
/** How long the plugin may take to email a request. */
const MAIL_WAIT_MS = 15_000;

/** The Go toolchain: on PATH, or where its tarball installs it. */
function findGo(): string | undefined {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/local/go/bin"];
  for (const dir of dirs) {
    if (dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/go`).isFile) return dir;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

const GO_DIR = findGo();

/** Polls `condition` until it holds or `timeoutMs` passed; returns whether it held. */
async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name: GO_DIR
    ? "against grpc-go (Teleport's gRPC stack): emails, 2 writes per request, a restart with GOAWAY"
    : "against grpc-go: SKIPPED, the Go toolchain is not installed",
  ignore: !GO_DIR,
  fn: () =>
    withTeardown(TEST_TIMEOUT_MS, async (defer) => {
      const cluster = await startCluster();
      defer(() => cluster.close());
      const bin = await buildGoTeleport(cluster.dir, `${GO_DIR}/go`);
      const go = await startGoTeleport(bin, cluster.teleport, cluster.dir);
      defer(() => go.stop());
      const plugin = spawnPlugin(await cluster.writeConfig({ addr: go.addr, severity: "INFO" }));
      defer(() => killPlugin(plugin));
      await plugin.waitFor(/Plugin is ready/, 30_000);
      // After the INIT, the reconcile lists every record once (GetPluginData without a resource).
      assert.ok(await until(async () => (await go.callCount("GetPluginData")) >= 1, MAIL_WAIT_MS));
      const readsAtStart = await go.callCount("GetPluginData");

      const request = (user: string, reviewers: string[]) =>
        cluster.teleport.createRequest({
          user,
          roles: ["editor"],
          reason: "grpc-go",
          suggestedReviewers: reviewers,
        });
      request("alice@example.com", ["bob@example.com", "carol@example.com"]);
      const first = await cluster.smtp.waitFor(3, MAIL_WAIT_MS);
      assert.deepEqual(first.map((m) => m.envelope.to[0]).sort(), [
        "bob@example.com",
        "carol@example.com",
        "ops@example.com",
      ]);
      // The record's last write (the claim's release) follows the emails.
      await until(async () => (await go.callCount("UpdatePluginData")) >= 2, MAIL_WAIT_MS);
      assert.equal(
        await go.callCount("UpdatePluginData"),
        2,
        "the create (with the claim) and one record of the three emails",
      );
      assert.equal(
        await go.callCount("GetPluginData"),
        readsAtStart,
        "a new request's record is not read",
      );

      // Teleport going down and back: the watch ends, GOAWAY, the same port again.
      const watches = await go.callCount("WatchEvents");
      await go.restart();
      assert.ok(
        await until(
          async () => (await go.callCount("WatchEvents")) > watches && (await go.watchers()) === 1,
          MAIL_WAIT_MS,
        ),
        `no watch again after the restart:\n${plugin.output()}`,
      );
      // The server's GOAWAY reached the plugin (not only a connection that went away).
      await plugin.waitFor(/INFO {2}Teleport sent GOAWAY \(HTTP\/2 error 0\): reconnecting/, 5_000);
      // The new INIT's reconcile lists the records once more.
      assert.ok(
        await until(
          async () => (await go.callCount("GetPluginData")) >= readsAtStart + 1,
          MAIL_WAIT_MS,
        ),
      );
      request("dave@example.com", ["erin@example.com"]);
      await cluster.smtp.waitFor(5, MAIL_WAIT_MS);
      // Its record written (the create, then the two emails'), the counts are whole.
      assert.ok(
        await until(async () => (await go.callCount("UpdatePluginData")) >= 4, MAIL_WAIT_MS),
      );
      assert.equal(await go.callCount("UpdatePluginData"), 4);
      assert.deepEqual(cluster.smtp.messages.slice(3).map((m) => m.envelope.to[0]).sort(), [
        "erin@example.com",
        "ops@example.com",
      ]);
      assert.equal(cluster.smtp.messages.length, 5, "nothing sent twice");
      assert.equal(
        await go.callCount("GetPluginData"),
        readsAtStart + 1,
        "no read for the new request",
      );
      assert.doesNotMatch(plugin.output(), /\bERROR\b/);
    }),
});
