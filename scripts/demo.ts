/**
 * `deno task demo`: the plugin, run as an operator runs it (`main.ts start`
 * in a child process), against an in-process Teleport test cluster (gRPC
 * with mutual TLS) and a real SMTP server (STARTTLS + AUTH) on loopback.
 * Creates an access request, reviews and approves it, and prints every
 * email that arrived, then the plugin's own log.
 */
import { spawnPlugin, startCluster } from "../tests/harness.ts";
import type { ReceivedMessage } from "../tests/smtp_server.ts";

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
