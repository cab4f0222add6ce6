import assert from "node:assert/strict";
import { FakeClock } from "../src/lib/clock.ts";
import { MEMORY_RELEASE_QUIET_MS } from "../src/lib/memory_release.ts";
import { runInProcess, startCluster, withTimeout } from "./harness.ts";

Deno.test("the plugin gives memory back once after a request's emails, when it has been quiet", () =>
  withTimeout(
    (async () => {
      const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
      const cluster = await startCluster();
      try {
        let releases = 0;
        const plugin = runInProcess(await cluster.writeConfig(), {
          clock,
          // Counted only: the real release is tested on its own (_memory_release_deno_test.ts).
          releaseMemory: () => void releases++,
        });
        await plugin.ready;
        await plugin.settled();
        // The start's reconcile was work: its quiet stretch gives back once.
        await clock.tick(MEMORY_RELEASE_QUIET_MS);
        assert.equal(releases, 1);

        cluster.teleport.createRequest({
          user: "alice@example.com",
          roles: ["editor"],
          suggestedReviewers: ["bob@example.com"],
        });
        await cluster.smtp.waitFor(2, 10_000);
        await plugin.settled();
        assert.equal(releases, 1, "not while the request was handled");
        await clock.tick(MEMORY_RELEASE_QUIET_MS - 1);
        assert.equal(releases, 1);
        await clock.tick(1);
        assert.equal(releases, 2);
        await clock.tick(MEMORY_RELEASE_QUIET_MS * 4);
        assert.equal(releases, 2, "once per quiet stretch");
        assert.equal(await plugin.stop(), 0);
        assert.equal(cluster.smtp.messages.length, 2, "the release cost no email");
      } finally {
        await cluster.close();
      }
    })(),
    20_000,
    "memory release e2e",
  ));
