/**
 * Issue "Notifications", end to end: the plugin against the Teleport test
 * server (real gRPC + mutual TLS) and a real SMTP server (STARTTLS + AUTH),
 * in this process (fast retries) or as a child process (for SIGKILL). Each
 * test checks what a mailbox would see: recipients, headers, threading,
 * bodies, and that every email arrives exactly once.
 */
import assert from "node:assert/strict";
import {
  capturedLogs,
  type Cluster,
  eventually,
  type InProcessPlugin,
  inProcessSettled,
  killPlugin,
  runInProcess,
  SENDER,
  spawnPlugin,
  startCluster,
  withTimeout,
} from "./harness.ts";
import type { FakeSmtpOptions, FakeSmtpServer, ReceivedMessage } from "./smtp_server.ts";
import type { TeleportTestServerOptions } from "./teleport_server.ts";
import { kindOf, textOf } from "./mailbox.ts";

/** Upper bound of one test; a hang fails instead of blocking the suite. */
const TEST_TIMEOUT_MS = 30_000;
/** How long the mailbox must stay quiet before "nothing more is coming" is believed. */
const QUIET_MS = 250;
/** Claim lifetime of replicas in the HA tests (renewed every third of it while sending). */
const REPLICA_CLAIM_TTL_MS = 2_000;
/** Default wait for emails. */
const MAIL_WAIT_MS = 10_000;

const CLUSTER = "teleport.example.com";
const OPS = "ops@example.com";

function bare(id: string | undefined): string {
  return (id ?? "").replace(/^<|>$/g, "");
}

function statusLine(m: ReceivedMessage): string | undefined {
  return /^Status: (.*)$/m.exec(textOf(m))?.[1];
}

function to(m: ReceivedMessage): string {
  assert.equal(m.envelope.to.length, 1, `one envelope recipient, got ${m.envelope.to}`);
  return m.envelope.to[0]!;
}

function requestIdOf(m: ReceivedMessage): string {
  const subject = m.header("Subject") ?? "";
  const match = new RegExp(`^${CLUSTER.replaceAll(".", "\\.")} Role Request (.+)$`).exec(subject);
  assert.ok(match, `subject ${JSON.stringify(subject)}`);
  return match[1]!;
}

interface Thread {
  readonly requestId: string;
  readonly to: string;
  readonly root: ReceivedMessage;
  readonly replies: ReceivedMessage[];
}

/**
 * Groups messages into threads by In-Reply-To, checking on the way that every
 * reply refers to a root sent earlier to the same recipient, with the root's
 * Message-ID in exactly one pair of brackets in In-Reply-To and References.
 */
function threadsOf(messages: readonly ReceivedMessage[]): Thread[] {
  const byRoot = new Map<string, Thread>();
  const ids = new Set<string>();
  for (const m of messages) {
    const messageId = m.header("Message-ID") ?? "";
    assert.match(messageId, /^<[^<>\s]+@example\.com>$/, "Message-ID in the sender's domain");
    assert.ok(!ids.has(messageId), `duplicate Message-ID ${messageId}`);
    ids.add(messageId);
    const inReplyTo = m.header("In-Reply-To");
    if (inReplyTo === undefined) {
      assert.equal(kindOf(m), "new", "only a new-request email starts a thread");
      assert.equal(m.header("References"), undefined);
      byRoot.set(bare(messageId), { requestId: requestIdOf(m), to: to(m), root: m, replies: [] });
      continue;
    }
    assert.match(inReplyTo, /^<[^<>\s]+>$/, "In-Reply-To in one pair of brackets");
    assert.equal(m.header("References"), inReplyTo, "References = In-Reply-To");
    const thread = byRoot.get(bare(inReplyTo));
    assert.ok(thread, `reply to an unknown root ${inReplyTo}`);
    assert.equal(to(m), thread.to, "a reply goes to the thread's recipient");
    assert.equal(requestIdOf(m), thread.requestId, "a reply keeps the thread's subject");
    assert.notEqual(kindOf(m), "new");
    thread.replies.push(m);
  }
  return [...byRoot.values()];
}

/**
 * Waits for `n` messages, then until the in-process plugins have nothing
 * left to do, and checks there are exactly `n`. With `spawned` (plugins in
 * child processes, which cannot tell us that) it waits for the mailbox to
 * stay quiet instead.
 */
async function expectExactly(
  smtp: FakeSmtpServer,
  n: number,
  timeoutMs = MAIL_WAIT_MS,
  spawned = false,
): Promise<ReceivedMessage[]> {
  await smtp.waitFor(n, timeoutMs);
  await (spawned ? quiet(smtp) : inProcessSettled());
  assert.equal(smtp.messages.length, n, `exactly ${n} emails`);
  return [...smtp.messages];
}

/** Resolves once no new message arrived for `QUIET_MS` (plugins in child processes only). */
async function quiet(smtp: FakeSmtpServer, ms = QUIET_MS) {
  let count = -1;
  while (count !== smtp.messages.length) {
    count = smtp.messages.length;
    await new Promise((r) => setTimeout(r, ms));
  }
}

/** The recipients of a thread set, sorted. */
function recipients(threads: readonly Thread[]): string[] {
  return threads.map((t) => t.to).sort();
}

function e2e(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `e2e: ${name}`,
    fn: () => withTimeout(fn(), TEST_TIMEOUT_MS, name),
  });
}

/**
 * Starts a cluster and (unless `plugins: 0`) in-process plugins, runs `fn`,
 * then stops the plugins (expecting exit 0) and tears everything down.
 */
async function withCluster(
  opts: {
    teleport?: TeleportTestServerOptions;
    smtp?: Partial<FakeSmtpOptions>;
    roleToRecipients?: Record<string, string[]>;
    plugins?: number;
  },
  fn: (c: Cluster, plugins: InProcessPlugin[], config: string) => Promise<void>,
) {
  const cluster = await startCluster({
    ...(opts.teleport ? { teleport: opts.teleport } : {}),
    ...(opts.smtp ? { smtp: opts.smtp } : {}),
  });
  const plugins: InProcessPlugin[] = [];
  try {
    const config = await cluster.writeConfig(
      opts.roleToRecipients ? { roleToRecipients: opts.roleToRecipients } : {},
    );
    // Replicas: a shorter claim, so the instance that lost a claim retries
    // (and finds nothing left to do) within the test's settling.
    const count = opts.plugins ?? 1;
    const replica = count > 1 ? { claimTtlMs: REPLICA_CLAIM_TTL_MS } : {};
    for (let i = 0; i < count; i++) plugins.push(runInProcess(config, replica));
    await Promise.all(plugins.map((p) => p.ready));
    await fn(cluster, plugins, config);
    for (const plugin of plugins.splice(0)) assert.equal(await plugin.stop(), 0);
  } finally {
    await Promise.allSettled(plugins.map((p) => p.stop()));
    await cluster.close();
  }
}

// ---------------------------------------------------------------------------

e2e(
  "a new request opens one thread per recipient with the Go plugin's lines, HTML and Auto-Submitted",
  async () => {
    await withCluster({}, async (c) => {
      const id = c.teleport.createRequest({
        user: "alice@example.com",
        roles: ["editor", "auditor"],
        reason: "hotfix for INC-42",
        suggestedReviewers: ["bob@example.com", "carol@example.com"],
      }).Metadata!.Name!;
      const messages = await expectExactly(c.smtp, 3);
      const threads = threadsOf(messages);
      assert.deepEqual(recipients(threads), ["bob@example.com", "carol@example.com", OPS]);
      for (const m of messages) {
        assert.equal(m.header("From"), SENDER);
        assert.equal(m.header("To"), to(m));
        assert.equal(m.header("Subject"), `${CLUSTER} Role Request ${id}`);
        assert.equal(m.header("Auto-Submitted"), "auto-generated");
        assert.equal(m.envelope.from, "noreply@example.com");
        assert.ok(m.secure, "sent over STARTTLS");
        assert.equal(m.user, "teleport", "sent after AUTH");
        assert.equal(m.mime.contentType, "multipart/alternative");
        assert.deepEqual(m.mime.parts.map((p) => p.contentType), ["text/plain", "text/html"]);
        const lines = textOf(m).split("\n");
        for (
          const line of [
            "You have a new Role Request:",
            `ID: ${id}`,
            `Cluster: ${CLUSTER}`,
            "User: alice@example.com",
            "Role(s): editor,auditor",
            "Reason: hotfix for INC-42",
            `Link: https://teleport.example.com/web/requests/${id}`,
            "Status: ⏳ PENDING",
          ]
        ) assert.ok(lines.includes(line), `line ${JSON.stringify(line)} in:\n${textOf(m)}`);
        assert.ok(lines.indexOf("Status: ⏳ PENDING") > lines.indexOf(`ID: ${id}`));
        assert.match(m.html ?? "", /Review request/);
        assert.match(
          m.html ?? "",
          new RegExp(`href="https://teleport\\.example\\.com/web/requests/${id}"`),
        );
        assert.match(m.html ?? "", /hotfix for INC-42/);
      }
      // Recorded in the Go plugin's format: one thread per recipient.
      const data = c.teleport.pluginData(id)!;
      assert.equal(data.user, "alice@example.com");
      assert.equal(data.roles, "editor,auditor");
      assert.equal(data.request_reason, "hotfix for INC-42");
      const stored = data.email_threads!.split(",").map((t) => t.split("/"));
      assert.deepEqual(stored.map((t) => t[0]).sort(), recipients(threads));
      for (const [email, timestamp, messageId] of stored) {
        assert.match(timestamp!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC$/);
        const thread = threads.find((t) => t.to === email)!;
        assert.equal(messageId, bare(thread.root.header("Message-ID")));
      }
      await eventually(() => !c.teleport.pluginData(id)?.email_claim, 5_000, "claim released");
    });
  },
);

e2e("without the web UI feature a new request carries the tsh review commands", async () => {
  await withCluster({ teleport: { advancedAccessWorkflows: false } }, async (c) => {
    const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    const [m] = await expectExactly(c.smtp, 1);
    const lines = (textOf(m!)).split("\n");
    assert.ok(lines.includes(`Approve: tsh request review --approve ${id}`), textOf(m!));
    assert.ok(lines.includes(`Deny: tsh request review --deny ${id}`), textOf(m!));
    assert.ok(!lines.some((l) => l.startsWith("Link:")), textOf(m!));
    assert.ok(!lines.some((l) => l.startsWith("Reason:")), "no Reason line for an empty reason");
  });
});

e2e("approval, denial, promotion and expiry are replied in every thread, on its root", async () => {
  await withCluster({}, async (c) => {
    const reviewers = ["bob@example.com", "carol@example.com"];
    const create = () =>
      c.teleport.createRequest({ user: "alice", roles: ["editor"], suggestedReviewers: reviewers })
        .Metadata!.Name!;
    const approved = create(), denied = create(), expired = create(), promoted = create();
    await c.smtp.waitFor(12);
    c.teleport.approve(approved, "okay");
    c.teleport.deny(denied, "not okay");
    c.teleport.deleteRequest(expired);
    c.teleport.promote(promoted, "see list", { name: "ops-list", title: "Ops" });
    const threads = threadsOf(await expectExactly(c.smtp, 24));
    const want: Record<string, string> = {
      [approved]: "✅ APPROVED (okay)",
      [denied]: "❌ DENIED (not okay)",
      [expired]: "⌛ EXPIRED",
      [promoted]: "🎉 PROMOTED (see list)",
    };
    assert.equal(threads.length, 12);
    for (const [id, status] of Object.entries(want)) {
      const own = threads.filter((t) => t.requestId === id);
      assert.deepEqual(recipients(own), ["bob@example.com", "carol@example.com", OPS]);
      for (const t of own) {
        assert.equal(t.replies.length, 1, `one reply in ${id}/${t.to}`);
        const reply = t.replies[0]!;
        assert.equal(kindOf(reply), "resolution");
        assert.equal(statusLine(reply), status);
        assert.equal(reply.header("In-Reply-To"), t.root.header("Message-ID"));
        assert.equal(reply.header("References"), t.root.header("Message-ID"));
        assert.equal(reply.header("Auto-Submitted"), "auto-generated");
        assert.ok(textOf(reply).includes(`ID: ${id}\n`));
        assert.ok(!textOf(reply).includes("tsh request review"));
      }
      const data = c.teleport.pluginData(id)!;
      assert.equal(data.resolution, status.split(" ")[1]);
    }
    assert.equal(c.teleport.pluginData(approved)!.resolve_reason, "okay");
  });
});

e2e(
  "two reviews then approval: both reviews in order, then the resolution, in each thread",
  async () => {
    await withCluster({}, async (c) => {
      const id = c.teleport.createRequest({
        user: "alice",
        roles: ["editor"],
        suggestedReviewers: ["bob@example.com", "carol@example.com"],
      }).Metadata!.Name!;
      // No waiting in between: the events queue up behind the first sends.
      c.teleport.review(id, {
        author: "bob@example.com",
        proposedState: "APPROVED",
        reason: "lgtm",
      });
      c.teleport.review(id, {
        author: "carol@example.com",
        proposedState: "DENIED",
        reason: "why?",
      });
      c.teleport.approve(id, "two looked");
      const threads = threadsOf(await expectExactly(c.smtp, 12));
      assert.equal(threads.length, 3);
      for (const t of threads) {
        assert.deepEqual(t.replies.map(kindOf), ["review", "review", "resolution"], t.to);
        const [first, second, resolution] = t.replies.map(textOf);
        assert.match(
          first!,
          /^bob@example\.com reviewed the request at .+\.\nResolution: ✅ APPROVED\.\nReason: lgtm\.$/,
        );
        assert.match(
          second!,
          /^carol@example\.com reviewed the request at .+\.\nResolution: ❌ DENIED\.\nReason: why\?\.$/,
        );
        assert.match(resolution!, /\nStatus: ✅ APPROVED \(two looked\)$/);
      }
      const data = c.teleport.pluginData(id)!;
      assert.equal(data.reviews_count, "2");
      assert.equal(data.resolution, "APPROVED");
    });
  },
);

e2e("a race of 32 requests approved by their reviewers: every email exactly once", async () => {
  await withCluster({}, async (c) => {
    const n = 32;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.push(
        c.teleport.createRequest({
          user: `user${i}`,
          roles: ["editor"],
          suggestedReviewers: [`a${i}@example.com`, `b${i}@example.com`],
        }).Metadata!.Name!,
      );
    }
    // The reviews race the new-request emails: some arrive before any thread exists.
    await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      c.teleport.review(id, { author: `a${i}@example.com`, proposedState: "APPROVED" });
      c.teleport.review(id, {
        author: `b${i}@example.com`,
        proposedState: "APPROVED",
        reason: "ok",
        resolve: true,
      });
    }
    // Per request: 3 roots, then in each thread 2 reviews and the resolution.
    const messages = await expectExactly(c.smtp, n * 12, 30_000);
    const threads = threadsOf(messages);
    assert.equal(threads.length, n * 3);
    for (let i = 0; i < n; i++) {
      const own = threads.filter((t) => t.requestId === ids[i]);
      assert.deepEqual(recipients(own), [`a${i}@example.com`, `b${i}@example.com`, OPS]);
      for (const t of own) {
        assert.deepEqual(t.replies.map(kindOf), ["review", "review", "resolution"]);
        assert.equal(statusLine(t.replies[2]!), "✅ APPROVED (ok)");
      }
    }
    for (const id of ids) assert.equal(c.teleport.pluginData(id)!.resolution, "APPROVED");
  });
});

e2e("SMTP answers 421, then 451 after DATA: the email still arrives, exactly once", async () => {
  const smtp = {
    failMailFrom: { count: 1, reply: { code: 421, message: "4.3.2 Try again later" } },
    failData: { count: 1, reply: { code: 451, message: "4.3.0 Queue full" } },
  };
  await withCluster({ smtp }, async (c) => {
    const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    const [m] = await expectExactly(c.smtp, 1);
    assert.equal(to(m!), OPS);
    assert.ok(c.smtp.mailFromCount >= 3, `refused tries were made (${c.smtp.mailFromCount})`);
    assert.ok(
      capturedLogs.some((l) => /Emails not sent yet \(try 1\).*421/.test(l)),
      "the transient failure is logged",
    );
    c.teleport.approve(id, "ok");
    const threads = threadsOf(await expectExactly(c.smtp, 2));
    assert.equal(statusLine(threads[0]!.replies[0]!), "✅ APPROVED (ok)");
  });
});

e2e(
  "a recipient refused with 550 is logged; the others get theirs and it is not retried",
  async () => {
    const bad = "gone@example.com";
    const reply = { code: 550, message: "5.1.1 No such user" };
    await withCluster({ smtp: { rejectRecipients: { [bad]: reply } } }, async (c) => {
      const id = c.teleport.createRequest({
        user: "alice",
        roles: ["editor"],
        suggestedReviewers: [bad, "bob@example.com"],
      }).Metadata!.Name!;
      const threads = threadsOf(await expectExactly(c.smtp, 2));
      assert.deepEqual(recipients(threads), ["bob@example.com", OPS]);
      await eventually(
        () =>
          capturedLogs.some((l) => l.includes(bad) && /refused for good/.test(l) && l.includes(id)),
        5_000,
        "a log line naming the refused recipient and the request",
      );
      await eventually(
        () => c.teleport.pluginData(id)?.email_failed === bad,
        5_000,
        "failure recorded",
      );
      const mailFrom = c.smtp.mailFromCount;
      c.teleport.approve(id, "ok");
      const after = threadsOf(await expectExactly(c.smtp, 4));
      for (const t of after) assert.equal(statusLine(t.replies[0]!), "✅ APPROVED (ok)");
      assert.equal(c.smtp.mailFromCount, mailFrom + 2, "no further try to the refused recipient");
    });
  },
);

/**
 * Runs the plugin as a child process until the SMTP server accepted the
 * email to OPS (and the plugin recorded it) while the emails to `stalled`
 * wait for the server's answer; then kills it with SIGKILL.
 */
async function killMidSend(
  cluster: Cluster,
  plugin: ReturnType<typeof spawnPlugin>,
  before: number,
  recorded: () => boolean,
) {
  await cluster.smtp.waitFor(before + 1);
  await eventually(() => cluster.smtp.stalledCount === 2, 10_000, "two stalled sends");
  await eventually(recorded, 10_000, "the email to OPS recorded");
  plugin.child.kill("SIGKILL");
  assert.equal((await plugin.status).signal, "SIGKILL");
  // The stalled messages die with their connections: never accepted.
  await eventually(() => cluster.smtp.stalledCount === 0, 5_000, "stalled sessions closed");
  cluster.smtp.release();
  assert.equal(cluster.smtp.messages.length, before + 1);
}

e2e(
  "plugin killed after 1 of 3 emails (new request, then resolution): the restart sends the other 2, never the first again",
  async () => {
    const stalled = ["bob@example.com", "carol@example.com"];
    const cluster = await startCluster({ smtp: { stallRecipients: stalled } });
    const children: ReturnType<typeof spawnPlugin>[] = [];
    const spawn = async (config: string) => {
      const child = spawnPlugin(config);
      children.push(child);
      await child.waitFor(/Plugin is ready/);
      return child;
    };
    try {
      const config = await cluster.writeConfig();
      const first = await spawn(config);
      const id = cluster.teleport.createRequest({
        user: "alice",
        roles: ["editor"],
        suggestedReviewers: stalled,
      }).Metadata!.Name!;
      const data = () => cluster.teleport.pluginData(id) ?? {};
      await killMidSend(
        cluster,
        first,
        0,
        () => (data().email_threads ?? "").startsWith(`${OPS}/`),
      );
      assert.match(
        data().email_claim ?? "",
        new RegExp(`/${first.child.pid}/`),
        "a dead owner's claim",
      );

      // The dead process's claim (same host, pid gone) is taken over at once,
      // not after it expires (30 s).
      const second = await spawn(config);
      const threads = threadsOf(await expectExactly(cluster.smtp, 3, MAIL_WAIT_MS, true));
      assert.deepEqual(recipients(threads), ["bob@example.com", "carol@example.com", OPS]);
      await eventually(
        () => (data().email_threads ?? "").split(",").length === 3,
        5_000,
        "threads",
      );

      // The same for replies: each thread's progress is recorded on its own.
      cluster.smtp.stall(stalled);
      cluster.teleport.approve(id, "ok");
      await killMidSend(cluster, second, 3, () => (data().email_replies ?? "") === `${OPS}=0+`);

      const third = await spawn(config);
      const all = threadsOf(await expectExactly(cluster.smtp, 6, MAIL_WAIT_MS, true));
      for (const t of all) {
        assert.deepEqual(t.replies.map(statusLine), ["✅ APPROVED (ok)"], t.to);
      }
      await eventually(() => data().resolution === "APPROVED", 5_000, "resolution recorded");
      third.child.kill("SIGTERM");
      assert.equal((await third.status).code, 0, third.output());
    } finally {
      for (const child of children) await killPlugin(child);
      await cluster.close();
    }
  },
);

e2e("changes made while the plugin was stopped are caught up once it starts", async () => {
  await withCluster({ plugins: 0 }, async (c, _plugins, config) => {
    const first = runInProcess(config);
    await first.ready;
    const approved = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    const deleted = c.teleport.createRequest({ user: "bob", roles: ["editor"] }).Metadata!.Name!;
    const reviewed = c.teleport.createRequest({ user: "carol", roles: ["editor"] }).Metadata!.Name!;
    await expectExactly(c.smtp, 3);
    assert.equal(await first.stop(), 0);

    c.teleport.approve(approved, "while away");
    c.teleport.deleteRequest(deleted);
    c.teleport.review(reviewed, { author: "dave@example.com", proposedState: "APPROVED" });
    const created = c.teleport.createRequest({ user: "erin", roles: ["editor"] }).Metadata!.Name!;

    const second = runInProcess(config);
    try {
      await second.ready;
      const threads = threadsOf(await expectExactly(c.smtp, 7));
      const byId = (id: string) => threads.filter((t) => t.requestId === id);
      assert.equal(statusLine(byId(approved)[0]!.replies[0]!), "✅ APPROVED (while away)");
      assert.equal(statusLine(byId(deleted)[0]!.replies[0]!), "⌛ EXPIRED");
      assert.deepEqual(byId(reviewed)[0]!.replies.map(kindOf), ["review"]);
      assert.equal(byId(created).length, 1);
      assert.equal(byId(created)[0]!.replies.length, 0);
      assert.equal(c.teleport.pluginData(deleted)!.resolution, "EXPIRED");
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });
});

e2e(
  "the watch stream breaks: events after the reconnect are handled, nothing repeated",
  async () => {
    await withCluster({}, async (c) => {
      const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
      await expectExactly(c.smtp, 1);
      c.teleport.dropStreams();
      c.teleport.approve(id, "during the outage");
      await c.teleport.waitForWatchers(1);
      const after = c.teleport.createRequest({ user: "bob", roles: ["editor"] }).Metadata!.Name!;
      const threads = threadsOf(await expectExactly(c.smtp, 3));
      const approved = threads.find((t) => t.requestId === id)!;
      assert.equal(statusLine(approved.replies[0]!), "✅ APPROVED (during the outage)");
      assert.ok(threads.some((t) => t.requestId === after));
    });
  },
);

e2e("the auth server restarts: what changed while it was down is caught up", async () => {
  await withCluster({}, async (c) => {
    const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    await expectExactly(c.smtp, 1);
    await c.teleport.stop();
    // Changed in the backend while the plugin cannot reach the Auth Service.
    c.teleport.approve(id, "while down");
    const created = c.teleport.createRequest({ user: "bob", roles: ["editor"] }).Metadata!.Name!;
    await c.teleport.restart();
    const threads = threadsOf(await expectExactly(c.smtp, 3));
    assert.equal(
      statusLine(threads.find((t) => t.requestId === id)!.replies[0]!),
      "✅ APPROVED (while down)",
    );
    assert.ok(threads.some((t) => t.requestId === created));
  });
});

e2e("two instances on one cluster send every email once", async () => {
  await withCluster({ plugins: 2 }, async (c, plugins) => {
    assert.notEqual(plugins[0]!.owner, plugins[1]!.owner);
    const n = 8;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = c.teleport.createRequest({
        user: `user${i}`,
        roles: ["editor"],
        suggestedReviewers: [`r${i}@example.com`],
      }).Metadata!.Name!;
      ids.push(id);
      c.teleport.review(id, { author: `r${i}@example.com`, proposedState: "APPROVED" });
      if (i % 2 === 0) c.teleport.approve(id, "ok");
      else c.teleport.deny(id, "no");
    }
    // Per request: 2 roots, then a review and the resolution in each.
    const threads = threadsOf(await expectExactly(c.smtp, n * 6, 20_000));
    assert.equal(threads.length, n * 2);
    for (const t of threads) assert.deepEqual(t.replies.map(kindOf), ["review", "resolution"]);
    for (const id of ids) {
      await eventually(
        () => !c.teleport.pluginData(id)?.email_claim,
        5_000,
        `claim on ${id} released`,
      );
    }
  });
});

e2e(
  "stopping mid-send finishes the send and records it; the next start sends nothing again",
  async () => {
    await withCluster(
      { plugins: 0, smtp: { stallRecipients: [OPS] } },
      async (c, _plugins, config) => {
        const first = runInProcess(config);
        await first.ready;
        const id = c.teleport.createRequest({
          user: "alice",
          roles: ["editor"],
          suggestedReviewers: ["bob@example.com"],
        }).Metadata!.Name!;
        await c.smtp.waitFor(1);
        await eventually(() => c.smtp.stalledCount === 1, 5_000, "the send to OPS stalled");
        const stopped = first.stop();
        await eventually(
          () => capturedLogs.some((l) => l.includes(first.owner) && /Finishing 1 event/.test(l)),
          5_000,
          "the stopping plugin waits for its in-flight send",
        );
        c.smtp.release();
        assert.equal(await stopped, 0);
        assert.equal(c.smtp.messages.length, 2);
        assert.equal((c.teleport.pluginData(id)?.email_threads ?? "").split(",").length, 2);

        const second = runInProcess(config);
        try {
          await second.ready;
          await second.settled();
          assert.equal(c.smtp.messages.length, 2, "nothing resent");
        } finally {
          assert.equal(await second.stop(), 0);
        }
      },
    );
  },
);

e2e("a claim left by an instance on another host is waited out, then taken over", async () => {
  await withCluster({ plugins: 0 }, async (c, _plugins, config) => {
    const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
    // Created and claimed by an instance elsewhere that died before sending.
    const expiresAt = Date.now() + 1_500;
    c.teleport.setPluginData(id, {
      user: "alice",
      roles: "editor",
      email_recipients: OPS,
      email_claim: `other-host/4242/abcd1234;${expiresAt}`,
    });
    const plugin = runInProcess(config);
    try {
      await plugin.ready;
      const [m] = await expectExactly(c.smtp, 1, 5_000);
      assert.ok(Date.now() >= expiresAt, "nothing sent while the claim was live");
      assert.equal(to(m!), OPS);
      assert.equal(kindOf(m!), "new");
      await eventually(() => !c.teleport.pluginData(id)?.email_claim, 5_000, "claim released");
    } finally {
      assert.equal(await plugin.stop(), 0);
    }
  });
});

e2e(
  "SMTP down for eight tries: the request is tried again until it is sent, once",
  async () => {
    const reply = { code: 421, message: "4.3.2 Service shutting down" };
    await withCluster({ smtp: { failMailFrom: { count: 8, reply } } }, async (c) => {
      const id = c.teleport.createRequest({ user: "alice", roles: ["editor"] }).Metadata!.Name!;
      const [m] = await expectExactly(c.smtp, 1);
      assert.equal(to(m!), OPS);
      assert.ok(
        capturedLogs.some((l) => l.includes(id) && /Emails not sent yet \(try 8\)/.test(l)),
        "each failed try is logged with the request",
      );
      await eventually(
        () => (c.teleport.pluginData(id)?.email_threads ?? "").startsWith(`${OPS}/`),
        5_000,
        "thread recorded",
      );
      c.teleport.approve(id, "ok");
      const threads = threadsOf(await expectExactly(c.smtp, 2));
      assert.equal(statusLine(threads[0]!.replies[0]!), "✅ APPROVED (ok)");
    });
  },
);

e2e("plugin data written by the Go plugin is continued in its threads", async () => {
  await withCluster({ plugins: 0 }, async (c, _plugins, config) => {
    const id = c.teleport.createRequest({
      user: "alice",
      roles: ["editor"],
      reason: "old",
      suggestedReviewers: ["bob@example.com"],
    }).Metadata!.Name!;
    // The Go plugin sent both emails and the first review before it was replaced.
    c.teleport.review(id, { author: "bob@example.com", proposedState: "APPROVED" });
    const goThreads = [
      `${OPS}/2026-11-22 10:00:00.5 +0000 UTC m=+1.0/1D4Q8ZC3K2ABC.3W5E11264SGSF@host`,
      "bob@example.com/2026-11-22 10:00:00.6 +0000 UTC m=+1.1/<20261122100000.ABCDEF@mg.example.com>",
    ].join(",");
    c.teleport.setPluginData(id, {
      user: "alice",
      roles: "editor",
      request_reason: "old",
      reviews_count: "1",
      email_threads: goThreads,
    });
    const plugin = runInProcess(config);
    try {
      await plugin.ready;
      await plugin.settled();
      assert.equal(c.smtp.messages.length, 0, "nothing is resent on startup");
      c.teleport.review(id, { author: "carol@example.com", proposedState: "APPROVED" });
      c.teleport.approve(id, "ok");
      const messages = await expectExactly(c.smtp, 4);
      const roots: Record<string, string> = {
        [OPS]: "<1D4Q8ZC3K2ABC.3W5E11264SGSF@host>",
        "bob@example.com": "<20261122100000.ABCDEF@mg.example.com>",
      };
      for (const [email, root] of Object.entries(roots)) {
        const own = messages.filter((m) => to(m) === email);
        assert.deepEqual(own.map(kindOf), ["review", "resolution"], email);
        for (const m of own) {
          assert.equal(m.header("In-Reply-To"), root);
          assert.equal(m.header("References"), root);
          assert.equal(m.header("Subject"), `${CLUSTER} Role Request ${id}`);
        }
        assert.match(textOf(own[0]!), /^carol@example\.com reviewed the request/);
        assert.equal(statusLine(own[1]!), "✅ APPROVED (ok)");
      }
      const data = c.teleport.pluginData(id)!;
      assert.equal(data.resolution, "APPROVED");
      assert.equal(data.reviews_count, "2");
      assert.deepEqual(
        data.email_threads!.split(",").map((t) => t.split("/")[0]),
        [OPS, "bob@example.com"],
      );
    } finally {
      assert.equal(await plugin.stop(), 0);
    }
  });
});

e2e("CR/LF in request values adds no header or recipient; HTML is escaped", async () => {
  await withCluster({}, async (c) => {
    const id = c.teleport.createRequest({
      user: "mallory\r\nBcc: y@evil.example",
      roles: ["editor"],
      reason: "urgent <b>now</b>\r\nBcc: x@evil.example\r\n\r\nforged body",
      suggestedReviewers: ["bob@example.com\r\nBcc: z@evil.example"],
    }).Metadata!.Name!;
    const [m] = await expectExactly(c.smtp, 1);
    c.teleport.approve(id, "ok\r\nBcc: w@evil.example");
    const [, reply] = await expectExactly(c.smtp, 2);
    for (const msg of [m!, reply!]) {
      assert.deepEqual(msg.envelope.to, [OPS], "no extra envelope recipient");
      assert.deepEqual(msg.headerAll("Bcc"), [], "no Bcc header");
      assert.deepEqual(msg.headerAll("To"), [OPS]);
      const headerBlock = msg.raw.slice(0, msg.raw.search(/\r?\n\r?\n/));
      assert.doesNotMatch(headerBlock, /evil/i, "nothing of the values in the headers");
      assert.doesNotMatch(msg.html ?? "", /<b>now<\/b>/);
    }
    assert.match(m!.html ?? "", /urgent &lt;b&gt;now&lt;\/b&gt;/);
    assert.ok((textOf(m!)).includes("Reason: urgent <b>now</b>"), "text keeps the value");
    assert.ok(
      capturedLogs.some((l) => l.includes("Not emailing") && l.includes("z@evil.example")),
      "the invalid reviewer is logged",
    );

    // A value that does reach a header (the id, in the subject) stays on its line.
    const hostile = "r1\r\nBcc: v@evil.example";
    c.teleport.createRequest({ id: hostile, user: "mallory", roles: ["editor"] });
    const [, , subjectOnly] = await expectExactly(c.smtp, 3);
    assert.equal(subjectOnly!.header("Subject"), `${CLUSTER} Role Request r1 Bcc: v@evil.example`);
    assert.deepEqual(subjectOnly!.headerAll("Bcc"), []);
    assert.deepEqual(subjectOnly!.envelope.to, [OPS]);
    const headerBlock = subjectOnly!.raw.slice(0, subjectOnly!.raw.search(/\r?\n\r?\n/));
    assert.doesNotMatch(headerBlock, /^Bcc:/im);
  });
});

e2e(
  "a backend that caps plugin data at 60 KB: 2,000 suggested reviewers and a 100 KB reason, each email once",
  async () => {
    await withCluster({}, async (c) => {
      c.teleport.cluster.maxPluginDataBytes = 60_000;
      const reviewers = Array.from({ length: 2_000 }, (_, i) => `r${i}@example.com`);
      const many = c.teleport.createRequest({
        user: "alice",
        roles: ["editor"],
        suggestedReviewers: reviewers,
      }).Metadata!.Name!;
      const messages = await expectExactly(c.smtp, 100, 20_000);
      assert.equal(new Set(messages.map((m) => m.envelope.to[0])).size, 100, "one each");
      assert.ok(
        capturedLogs.some((l) => l.includes(many) && /only the first 100 are emailed/.test(l)),
        "the overflow is logged",
      );
      const stored = c.teleport.pluginData(many)!;
      assert.equal(stored.email_threads!.split(",").length, 100);

      const long = c.teleport.createRequest({
        user: "bob",
        roles: ["editor"],
        reason: "why ".repeat(25_000),
      }).Metadata!.Name!;
      const [m] = (await expectExactly(c.smtp, 101)).slice(100);
      assert.ok(textOf(m!).includes("why why"), "the email carries the reason");
      assert.ok((c.teleport.pluginData(long)?.request_reason ?? "").length <= 1_000);
      c.teleport.approve(long, "ok");
      await expectExactly(c.smtp, 102);
    });
  },
);
