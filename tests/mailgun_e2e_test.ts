/**
 * Issue "Notifications" with the Mailgun mailer, end to end: the plugin
 * (in this process) against the Teleport test server and the fake Mailgun
 * API, configured with `[mailgun]` only and `api_base` pointing at the fake
 * (as an EU-region operator points it at `https://api.eu.mailgun.net`).
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
  type Cluster,
  eventually,
  type InProcessPlugin,
  runInProcess,
  SENDER,
  startCluster,
  withTimeout,
} from "./harness.ts";
import { type FakeMailgun, type MailgunRequest, startMailgunServer } from "./mailgun_server.ts";

/** Upper bound of one test. */
const TEST_TIMEOUT_MS = 30_000;

const API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const DOMAIN = "mg.example.com";
const CLUSTER = "teleport.example.com";
const OPS = "ops@example.com";
const MESSAGES_PATH = `/v3/${DOMAIN}/messages`;

function mailgunTest(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `mailgun e2e: ${name}`,
    fn: () => withTimeout(fn(), TEST_TIMEOUT_MS, name),
  });
}

/** A cluster plus the fake Mailgun API, and a config with `[mailgun]` and no `[smtp]`. */
async function withMailgun(
  fn: (c: Cluster, api: FakeMailgun, config: string) => Promise<void>,
  o: { key?: string } = {},
) {
  const cluster = await startCluster();
  const api = startMailgunServer({ apiKey: API_KEY, domains: [DOMAIN] });
  try {
    const config = await cluster.writeConfig({
      smtpSection: "",
      extra: [
        "[mailgun]",
        `domain = "${DOMAIN}"`,
        `private_key = "${o.key ?? API_KEY}"`,
        // A trailing slash, as people paste region URLs; the config drops it.
        `api_base = "${api.url}/"`,
      ].join("\n"),
    });
    await fn(cluster, api, config);
  } finally {
    await api.close();
    await cluster.close();
  }
}

/**
 * A {@linkcode mailgunTest} of the plugin on a {@linkcode withMailgun} config:
 * ready first, stopped with exit 0 last.
 */
function mailgunPluginTest(
  name: string,
  fn: (c: Cluster, api: FakeMailgun, plugin: InProcessPlugin) => Promise<void>,
) {
  mailgunTest(name, () =>
    withMailgun(async (c, api, config) => {
      const plugin = runInProcess(config);
      try {
        await plugin.ready;
        await fn(c, api, plugin);
      } finally {
        assert.equal(await plugin.stop(), 0);
      }
    }));
}

/** Sends (not the health check) accepted by the API. */
function accepted(api: FakeMailgun): MailgunRequest[] {
  return api.requests.filter((r) => r.status === 200 && r.field("o:testmode") === undefined);
}

/** A text field with LF line ends (multipart/form-data carries CRLF). */
function textField(r: MailgunRequest, name = "text"): string {
  return (r.field(name) ?? "").replaceAll("\r\n", "\n");
}

/** Recipient → root id (bare) from the stored threads. */
function storedThreads(c: Cluster, requestId: string): Map<string, string> {
  const text = c.teleport.pluginData(requestId)?.email_threads ?? "";
  return new Map(
    text.split(",").filter(Boolean).map((t) => {
      const [email, , id] = t.split("/");
      return [email!, id!];
    }),
  );
}

mailgunPluginTest(
  "a test-mode health check at startup, then one POST per recipient with every field",
  async (c, api, plugin) => {
    // The health check came before "ready": a test-mode send that Mailgun does not deliver.
    assert.equal(api.requests.length, 1);
    const health = api.requests[0]!;
    assert.equal(health.field("o:testmode"), "yes");
    assert.equal(health.field("to"), OPS, 'to role_to_recipients["*"], as the Go plugin does');
    assert.equal(health.path, MESSAGES_PATH);
    assert.deepEqual(health.auth, { username: "api", password: API_KEY });
    assert.equal(health.status, 200);

    const id = c.teleport.createRequest({
      user: "alice@example.com",
      roles: ["editor"],
      reason: "hotfix <now>",
      suggestedReviewers: ["bob@example.com", "carol@example.com"],
    }).Metadata!.Name!;
    await api.waitFor(4);
    await plugin.settled();
    const sends = accepted(api);
    assert.equal(sends.length, 3);
    assert.deepEqual(sends.map((r) => r.field("to")).sort(), [
      "bob@example.com",
      "carol@example.com",
      OPS,
    ]);
    for (const r of sends) {
      assert.equal(r.method, "POST");
      assert.equal(r.path, MESSAGES_PATH);
      assert.deepEqual(r.auth, { username: "api", password: API_KEY });
      assert.equal(r.field("from"), SENDER);
      assert.equal(r.field("subject"), `${CLUSTER} Role Request ${id}`);
      const text = textField(r);
      assert.match(text, /^You have a new Role Request:\n/);
      assert.ok(text.includes(`\nID: ${id}\n`), text);
      assert.ok(text.includes("\nReason: hotfix <now>\n"), text);
      assert.ok(text.includes(`\nLink: https://teleport.example.com/web/requests/${id}\n`));
      assert.match(text, /\nStatus: ⏳ PENDING$/);
      assert.match(r.field("html") ?? "", /hotfix &lt;now&gt;/);
      assert.equal(r.field("o:require-tls"), "yes");
      assert.equal(r.field("h:Auto-Submitted"), "auto-generated");
      assert.equal(r.field("h:In-Reply-To"), undefined);
      assert.equal(r.field("o:testmode"), undefined);
    }
    // The ids Mailgun returned are stored without their brackets.
    await eventually(() => storedThreads(c, id).size === 3, 5_000, "three threads stored");
    const returned = new Set(api.ids.map((i) => i.replace(/^<|>$/g, "")));
    for (const rootId of storedThreads(c, id).values()) {
      assert.ok(returned.has(rootId), `${rootId} is an id Mailgun returned`);
      assert.doesNotMatch(rootId, /[<>]/);
    }
  },
);

mailgunPluginTest(
  "the approval reply threads on the id Mailgun returned, in one pair of brackets",
  async (c, api, plugin) => {
    const id = c.teleport.createRequest({
      user: "alice",
      roles: ["editor"],
      suggestedReviewers: ["bob@example.com"],
    }).Metadata!.Name!;
    await api.waitFor(3);
    await eventually(() => storedThreads(c, id).size === 2, 5_000, "two threads stored");
    const roots = storedThreads(c, id);
    c.teleport.review(id, {
      author: "bob@example.com",
      proposedState: "APPROVED",
      reason: "lgtm",
    });
    c.teleport.approve(id, "okay");
    await api.waitFor(7);
    await plugin.settled();
    const replies = accepted(api).filter((r) => r.field("h:In-Reply-To") !== undefined);
    assert.equal(replies.length, 4);
    for (const email of [OPS, "bob@example.com"]) {
      const own = replies.filter((r) => r.field("to") === email);
      assert.equal(own.length, 2, email);
      const [review, resolution] = own;
      assert.match(textField(review!), /^bob@example\.com reviewed the request/);
      assert.match(textField(resolution!), /\nStatus: ✅ APPROVED \(okay\)$/);
      for (const r of own) {
        const root = `<${roots.get(email)}>`;
        assert.equal(r.field("h:In-Reply-To"), root);
        assert.equal(r.field("h:References"), root);
        assert.ok(api.ids.includes(root), "exactly the id Mailgun returned");
        assert.equal(r.field("subject"), `${CLUSTER} Role Request ${id}`);
        assert.equal(r.field("o:require-tls"), "yes");
      }
    }
    assert.equal(c.teleport.pluginData(id)!.resolution, "APPROVED");
  },
);

mailgunPluginTest(
  "429 and 500 are retried and the email arrives once; a 400 is logged, not retried",
  async (c, api, plugin) => {
    api.script(
      { status: 429, body: { message: "Too many requests" } },
      { status: 500, body: { message: "Internal error" } },
    );
    const first = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!
      .Name!;
    await api.waitFor(4);
    await plugin.settled();
    assert.deepEqual(api.requests.slice(1).map((r) => r.status), [429, 500, 200]);
    assert.equal(accepted(api).filter((r) => r.field("to") === OPS).length, 1);
    await eventually(() => storedThreads(c, first).size === 1, 5_000, "thread stored");

    api.script({ status: 400, body: { message: "'to' parameter is not a valid address" } });
    const second = c.teleport.createRequest({ user: "bob", roles: ["editor"] }).Metadata!.Name!;
    await api.waitFor(5);
    await eventually(
      () => capturedLogs.some((l) => l.includes(second) && /refused for good/.test(l)),
      5_000,
      "the permanent failure logged with the request",
    );
    await plugin.settled();
    assert.equal(api.requests.length, 5, "a 400 is not retried");
    assert.equal(c.teleport.pluginData(second)?.email_failed, OPS);
  },
);

mailgunTest("a wrong API key fails the startup health check with the API's answer", async () => {
  const wrongKey = "key-wrong-0000000000000000000000000";
  await withMailgun(async (_c, api, config) => {
    const plugin = runInProcess(config);
    const error = await plugin.ready.then(
      () => assert.fail("the plugin became ready with a wrong key"),
      (e: Error) => e,
    );
    assert.match(error.message, /Mailer health check failed/);
    assert.match(error.message, /401/);
    assert.match(error.message, /Forbidden/);
    assert.ok(!error.message.includes(wrongKey), "the key is not in the error");
    await assert.rejects(plugin.done);
    assert.equal(api.requests.length, 1);
    assert.equal(api.requests[0]!.field("o:testmode"), "yes");
  }, { key: wrongKey });
});
