import assert from "node:assert/strict";
import { runInProcess, startCluster } from "./harness.ts";

Deno.test("smoke: a new request reaches 3 recipients over real gRPC and SMTP", async () => {
  const cluster = await startCluster();
  try {
    const plugin = runInProcess(await cluster.writeConfig());
    await plugin.ready;
    cluster.teleport.createRequest({
      user: "alice@example.com",
      roles: ["editor"],
      reason: "hotfix",
      suggestedReviewers: ["bob@example.com", "carol@example.com"],
    });
    const messages = await cluster.smtp.waitFor(3, 10_000);
    assert.deepEqual(messages.map((m) => m.envelope.to[0]).sort(), [
      "bob@example.com",
      "carol@example.com",
      "ops@example.com",
    ]);
    assert.equal(await plugin.stop(), 0);
  } finally {
    await cluster.close();
  }
});
