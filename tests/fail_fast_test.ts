/**
 * `TELEPORT_PLUGIN_FAIL_FAST`, as Teleport's plugins read it (their Helm
 * chart sets it): a lost watch stream ends the plugin instead of being
 * reopened; a value that is not a boolean is a startup error.
 */
import assert from "node:assert/strict";
import { eventually, runInProcess, startCluster, withTimeout } from "./harness.ts";

/** Upper bound of one test. */
const TEST_TIMEOUT_MS = 20_000;

Deno.test("TELEPORT_PLUGIN_FAIL_FAST=true: the plugin exits with the stream's error when the cluster goes away", async () => {
  const c = await startCluster();
  try {
    const plugin = runInProcess(await c.writeConfig(), {
      env: { TELEPORT_PLUGIN_FAIL_FAST: "true" },
    });
    await plugin.ready;
    const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    await c.smtp.waitFor(1);
    await eventually(
      () => !!c.teleport.pluginData(id)?.email_threads,
      5_000,
      "the thread recorded",
    );
    await plugin.settled();
    await c.teleport.stop();
    await withTimeout(
      assert.rejects(plugin.done, /UNAVAILABLE|WatchEvents|watch|connection|closed/i),
      TEST_TIMEOUT_MS,
      "the plugin to give up",
    );
  } finally {
    await c.close();
  }
});

Deno.test("without TELEPORT_PLUGIN_FAIL_FAST the plugin rides over the same outage", async () => {
  const c = await startCluster();
  try {
    const plugin = runInProcess(await c.writeConfig(), { env: { TELEPORT_PLUGIN_FAIL_FAST: "0" } });
    await plugin.ready;
    await c.teleport.stop();
    await c.teleport.restart();
    c.teleport.createRequest({ user: "alice", roles: ["editor"] });
    await c.smtp.waitFor(1, 15_000);
    assert.equal(await plugin.stop(), 0);
  } finally {
    await c.close();
  }
});

Deno.test("TELEPORT_PLUGIN_FAIL_FAST that is not a boolean is a startup error naming it", async () => {
  const c = await startCluster();
  try {
    const plugin = runInProcess(await c.writeConfig(), {
      env: { TELEPORT_PLUGIN_FAIL_FAST: "yes" },
    });
    plugin.ready.catch(() => {}); // rejects too: it never got ready
    await assert.rejects(plugin.done, /Cannot parse TELEPORT_PLUGIN_FAIL_FAST "yes"/);
  } finally {
    await c.close();
  }
});

Deno.test("TELEPORT_PLUGIN_FAIL_FAST=true: a renewed identity moves the watch to the new connection, it does not end the plugin", async () => {
  const c = await startCluster();
  try {
    // The live certificate expires within the reconnect margin, so a renewal makes the client
    // move to a new connection (as with tbot's 1 h certificates, once an hour).
    await c.teleport.writeIdentity(c.identityPath, { notAfter: new Date(Date.now() + 65_000) });
    const plugin = runInProcess(await c.writeConfig({ refreshInterval: "1s" }), {
      env: { TELEPORT_PLUGIN_FAIL_FAST: "true" },
    });
    await plugin.ready;
    let exited = false;
    plugin.done.then(() => exited = true, () => exited = true);
    const streams = c.teleport.callCount("WatchEvents");
    await c.teleport.writeIdentity(c.identityPath, {
      notAfter: new Date(Date.now() + 3_600_000),
    });
    await eventually(
      () => c.teleport.callCount("WatchEvents") > streams,
      10_000,
      "the watch reopened",
    );
    c.teleport.createRequest({ user: "alice", roles: ["editor"] });
    await c.smtp.waitFor(1, 10_000);
    assert.equal(exited, false, "the plugin ended");
    assert.equal(await plugin.stop(), 0);
  } finally {
    await c.close();
  }
});
