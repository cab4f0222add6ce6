/**
 * `deno task demo`: the plugin, run as an operator runs it (`main.ts start`
 * in a child process), against an in-process Teleport test cluster (gRPC
 * with mutual TLS) and a real SMTP server (STARTTLS + AUTH) on loopback.
 * Creates an access request, reviews and approves it, and prints every
 * email that arrived, then the plugin's own log.
 *
 * `deno task demo --escalation`: the plugin in this process on a clock the
 * demo moves, with `[escalation]` and `[access_expiry]` on: a request nobody
 * reviews is escalated after 4 hours, then reviewed and approved (replied in
 * the escalation thread too), and its requester is warned a day before the
 * granted access ends.
 */
import { capturedLogs, runInProcess, spawnPlugin, startCluster } from "../tests/harness.ts";
import type { ReceivedMessage } from "../tests/smtp_server.ts";
import { FakeClock } from "../src/lib/clock.ts";

const bold = (s: string) => (Deno.stdout.isTerminal() ? `\x1b[1m${s}\x1b[0m` : s);

function show(message: ReceivedMessage, index: number) {
  console.log(bold(`\n── email ${index + 1} ─────────────────────────────────────────────`));
  for (const name of ["From", "To", "Subject", "Message-ID", "In-Reply-To", "Auto-Submitted"]) {
    const value = message.header(name);
    if (value !== undefined) console.log(`${name}: ${value}`);
  }
  console.log(`(over ${message.secure ? "TLS" : "plain text"}, AUTH as ${message.user ?? "-"})`);
  console.log("");
  console.log((message.text ?? "").trimEnd());
}

if (Deno.args.includes("--escalation")) {
  await escalationDemo();
  Deno.exit(0);
}

const cluster = await startCluster();
const plugin = spawnPlugin(
  await cluster.writeConfig({ roleToRecipients: { "*": ["security@example.com"] } }),
);
try {
  await plugin.waitFor(/Plugin is ready/, 30_000);
  console.log(bold("Plugin is ready. Creating an access request…"));
  const request = cluster.teleport.createRequest({
    user: "alice@example.com",
    roles: ["editor"],
    reason: "Deploying hotfix #42",
    suggestedReviewers: ["bob@example.com"],
  });
  const id = request.Metadata!.Name!;
  await cluster.smtp.waitFor(2, 10_000);
  console.log(bold("bob@example.com reviews it, then it is approved…"));
  cluster.teleport.review(id, {
    author: "bob@example.com",
    proposedState: "APPROVED",
    reason: "looks fine",
  });
  await cluster.smtp.waitFor(4, 10_000);
  cluster.teleport.approve(id, "okay");
  const messages = await cluster.smtp.waitFor(6, 10_000);
  messages.forEach(show);
  console.log(bold(`\n${messages.length} emails arrived at the SMTP server for request ${id}.`));
} finally {
  plugin.child.kill("SIGTERM");
  const status = await plugin.status;
  console.log(bold(`\n── the plugin's log (exit code ${status.code}) ──`));
  console.log(plugin.output().trimEnd());
  await cluster.close();
}

/** `--escalation`: escalation and a warning before access ends, on a clock the demo moves. */
async function escalationDemo() {
  const HOUR = 3_600_000;
  const cluster = await startCluster();
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  const config = await cluster.writeConfig({
    roleToRecipients: { "*": ["security@example.com"] },
    notifyRequester: true,
    severity: "INFO",
    extra: [
      "[escalation]",
      'after = "4h"',
      'recipients = ["oncall-lead@example.com"]',
      "",
      "[access_expiry]",
      'warn_before = ["24h", "1h"]',
    ].join("\n"),
  });
  const plugin = runInProcess(config, { clock, reminderCheckMs: 60_000 });
  const moveBy = async (ms: number) => {
    await clock.skip(ms);
    await plugin.settled();
  };
  try {
    await plugin.ready;
    const created = clock.now();
    console.log(bold("Plugin is ready. alice@example.com requests editor for 48 hours…"));
    const request = cluster.teleport.createRequest({
      user: "alice@example.com",
      roles: ["editor"],
      reason: "Deploying hotfix #42",
      created: new Date(created),
      expires: new Date(created + 48 * HOUR),
    });
    const id = request.Metadata!.Name!;
    await cluster.smtp.waitFor(2, 10_000);
    console.log(bold("Nobody reviews it: 4 hours pass (on the plugin's clock)…"));
    await moveBy(4 * HOUR);
    await cluster.smtp.waitFor(3, 10_000);
    console.log(bold("bob@example.com approves it…"));
    cluster.teleport.review(id, {
      author: "bob@example.com",
      proposedState: "APPROVED",
      reason: "looks fine",
      resolve: true,
    });
    await cluster.smtp.waitFor(9, 10_000);
    await plugin.settled();
    console.log(bold("20 more hours pass: access ends in a day…"));
    await moveBy(20 * HOUR);
    const messages = await cluster.smtp.waitFor(10, 10_000);
    messages.forEach(show);
    console.log(bold(`\n${messages.length} emails arrived at the SMTP server for request ${id}.`));
  } finally {
    const code = await plugin.stop();
    console.log(bold(`\n── the plugin's log (exit code ${code}) ──`));
    console.log(capturedLogs.join("").trimEnd());
    await cluster.close();
  }
}
