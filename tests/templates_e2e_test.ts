/**
 * Issue 16, end to end: the plugin with `[templates]` against the Teleport
 * test server (real gRPC + mutual TLS) and a real SMTP server (STARTTLS +
 * AUTH). Checks what a mailbox sees: the operator's subject and words,
 * hostile request values escaped in HTML and kept out of headers, the
 * built-in emails for kinds without templates, and a template that fails on
 * unexpected data costing no email (built-in text, logged once).
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
  inProcessSettled,
  runInProcess,
  startCluster,
  withTimeout,
} from "./harness.ts";
import { textOf } from "./mailbox.ts";
import { loadTemplateEngine } from "../src/notify/template.ts";

// The in-process plugin loads its config synchronously (`loadConfigSync`): the engine first.
await loadTemplateEngine();

/** Upper bound of one test; a hang fails instead of blocking the suite. */
const TEST_TIMEOUT_MS = 30_000;

const TEMPLATES = `
[templates]
subject = "[ACCESS-{{request_id}}] {{user}} wants {{roles_text}}"
time_zone = "Europe/Berlin"

[templates.new_request]
text = """
Neue Zugriffsanfrage von {{user}} für {{roles_text}}.
Begründung: {{reason}}
An: {{recipient}}
{{#if link}}Prüfen: {{link}}{{else}}Genehmigen: {{tsh_approve}}{{/if}}
"""
html = "<p>Neue Anfrage: <b>{{user}}</b> – {{reason}}</p>"

[templates.review]
text = "{{review.author}}: {{review.state_text}} ({{review.reason}}), {{reviews.length}} Review(s)"
`;

function e2e(name: string, fn: () => Promise<void>) {
  Deno.test({ name: `e2e templates: ${name}`, fn: () => withTimeout(fn(), TEST_TIMEOUT_MS, name) });
}

e2e("new request, review and resolution through the operator's templates over SMTP", async () => {
  const cluster = await startCluster();
  const plugin = runInProcess(await cluster.writeConfig({ extra: TEMPLATES }));
  try {
    await plugin.ready;
    const hostile = `<script>alert(1)</script>\r\nBcc: evil@example.com`;
    const id = cluster.teleport.createRequest({
      user: "alice@example.com",
      roles: ["editor", "auditor"],
      reason: hostile,
    }).Metadata!.Name!;
    const [first] = await cluster.smtp.waitFor(1);
    const subject = `[ACCESS-${id}] alice@example.com wants editor, auditor`;
    assert.equal(first!.header("Subject"), subject);
    assert.equal(first!.header("Bcc"), undefined);
    assert.deepEqual(first!.envelope.to, ["ops@example.com"]);
    const text = textOf(first!);
    assert.match(text, /^Neue Zugriffsanfrage von alice@example\.com für editor, auditor\.$/m);
    assert.match(text, /^An: ops@example\.com$/m);
    const link = `https://teleport.example.com/web/requests/${id}`;
    assert.ok(text.includes(`\nPrüfen: ${link}\n`), "the link branch (the cluster has workflows)");
    assert.ok(text.includes("<script>alert(1)</script>"), "plain text is not escaped");
    const html = first!.html ?? "";
    assert.doesNotMatch(html, /<script/);
    assert.match(
      html,
      /<p>Neue Anfrage: <b>alice@example\.com<\/b> – &lt;script&gt;alert\(1\)&lt;\/script&gt;/,
    );

    cluster.teleport.review(id, {
      author: "bob@example.com",
      proposedState: "APPROVED",
      reason: "ok",
    });
    const [, review] = await cluster.smtp.waitFor(2);
    assert.equal(review!.header("Subject"), subject, "the shared subject keeps the thread");
    assert.equal(textOf(review!), "bob@example.com: ✅ APPROVED (ok), 1 Review(s)");
    assert.match(review!.html ?? "", /<div style="white-space:pre-wrap">bob@example\.com: /);

    cluster.teleport.approve(id, "fine");
    const [, , resolution] = await cluster.smtp.waitFor(3);
    assert.equal(resolution!.header("Subject"), subject);
    // No resolution template: the built-in text.
    assert.match(textOf(resolution!), /^Role Request has been resolved:$/m);
    assert.match(textOf(resolution!), /^Status: ✅ APPROVED \(fine\)$/m);
    await inProcessSettled();
    assert.equal(cluster.smtp.messages.length, 3);
    assert.equal(await plugin.stop(), 0);
  } finally {
    await plugin.stop();
    await cluster.close();
  }
});

e2e(
  "a template that fails on unexpected data: the built-in email goes out, logged once",
  async () => {
    const cluster = await startCluster();
    // The sample data has one resource, so validation passes; two reach the bad lookup.
    const extra = `
[templates.new_request]
text = "{{#each resources}}{{#if @index}}{{this.x}}{{/if}}{{/each}}"
`;
    const plugin = runInProcess(await cluster.writeConfig({ extra }));
    try {
      await plugin.ready;
      const logsBefore = capturedLogs.length;
      const resources = [{ kind: "node", name: "db-1" }, { kind: "node", name: "db-2" }];
      const ids = [1, 2].map(() =>
        cluster.teleport.createRequest({
          user: "alice@example.com",
          roles: ["editor"],
          requestedResources: resources,
        }).Metadata!.Name!
      );
      const messages = await cluster.smtp.waitFor(2);
      await inProcessSettled();
      assert.equal(cluster.smtp.messages.length, 2);
      for (const m of messages) {
        assert.match(m.header("Subject") ?? "", /^teleport\.example\.com Role Request /);
        assert.match(textOf(m), /^You have a new Role Request:$/m);
      }
      assert.deepEqual(
        messages.map((m) => m.header("Subject")!.split(" ").at(-1)).sort(),
        ids.sort(),
      );
      const failures = capturedLogs.slice(logsBefore).filter((l) => l.includes("template failed"));
      assert.equal(failures.length, 1, failures.join("\n"));
      assert.match(failures[0]!, /templates\.new_request\.text/);
      assert.equal(await plugin.stop(), 0);
    } finally {
      await plugin.stop();
      await cluster.close();
    }
  },
);
