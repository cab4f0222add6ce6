/**
 * Retries of emails that failed for now, end to end: the plugin in this
 * process against the Teleport test server and the SMTP test server, on a
 * clock the test moves. A recipient whose server answers 4xx does not hold
 * up the request's other emails: the failed one waits for its request's
 * retry, and only it is sent again.
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
  type InProcessPlugin,
  moveTo,
  runInProcess,
  startCluster,
  withTimeout,
} from "./harness.ts";
import { FakeClock } from "../src/lib/clock.ts";
import type { ReceivedMessage } from "./smtp_server.ts";

const TEST_TIMEOUT_MS = 20_000;
/** Longer than any of these tests: a handler that waited this long for a retry fails them. */
const RETRY_MS = 120_000;
const OPS = "ops@example.com";
const FULL = "full@example.com";
const BOB = "bob@example.com";

function describe(m: ReceivedMessage): string {
  const text = (m.text ?? "").replaceAll("\r\n", "\n");
  const kind = text.startsWith("You have a new Role Request:")
    ? "new"
    : text.startsWith("Role Request has been resolved:")
    ? "resolution"
    : / reviewed the request/.test(text)
    ? "review"
    : text.slice(0, 40);
  return `${kind} ${m.envelope.to.join(",")}`;
}

Deno.test({
  name: "e2e retry: a mailbox answering 452 holds up nobody; its email goes out once it takes it",
  fn: () =>
    withTimeout(
      (async () => {
        const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
        const full = { code: 452, message: "4.2.2 Mailbox full" };
        const rejectRecipients: Record<string, typeof full> = { [FULL]: full };
        const c = await startCluster({ smtp: { rejectRecipients } });
        const plugins: InProcessPlugin[] = [];
        try {
          const config = await c.writeConfig({ roleToRecipients: { "*": [OPS, FULL] } });
          const plugin = runInProcess(config, {
            clock,
            sendRetry: { baseMs: RETRY_MS, capMs: RETRY_MS },
          });
          plugins.push(plugin);
          await plugin.ready;

          const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!
            .Name!;
          await c.smtp.waitFor(1);
          // Handled; what failed waits for the request's retry (on the test's clock).
          await plugin.activity.idle(false);
          assert.equal(plugin.activity.waiting, 1, "one retry waits");
          assert.ok(
            capturedLogs.some((l) =>
              l.includes("WARN") && /Emails not sent yet \(try 1\).*452/.test(l) &&
              l.includes(id)
            ),
            "the failure for now is logged with its request",
          );

          // A review goes out now, not after the full mailbox's retries.
          c.teleport.review(id, { author: BOB, proposedState: "APPROVED", reason: "fine" });
          await c.smtp.waitFor(2);
          await plugin.activity.idle(false);
          assert.deepEqual(c.smtp.messages.map(describe), [`new ${OPS}`, `review ${OPS}`]);

          // The mailbox takes mail again: the retry sends it what it is owed, and nothing else.
          delete rejectRecipients[FULL];
          await moveTo(clock, clock.now() + RETRY_MS, plugins);
          // Its thread opens now. (The review came before it: the plugin data keeps one review
          // count for all threads, as the Go plugin's, so that reply is not sent into it.)
          assert.deepEqual(c.smtp.messages.slice(2).map(describe), [`new ${FULL}`]);
          assert.equal(plugin.activity.waiting, 0, "no retry left");

          c.teleport.approve(id, "ok");
          await c.smtp.waitFor(5);
          await plugin.settled();
          assert.deepEqual(c.smtp.messages.slice(3).map(describe).sort(), [
            `resolution ${FULL}`,
            `resolution ${OPS}`,
          ]);
          assert.equal(c.smtp.messages.length, 5, "nothing twice");
          for (const p of plugins.splice(0)) assert.equal(await p.stop(), 0);
        } finally {
          await Promise.allSettled(plugins.map((p) => p.stop()));
          await c.close();
        }
      })(),
      TEST_TIMEOUT_MS,
      "slow recipient",
    ),
});
