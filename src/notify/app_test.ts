/**
 * The notifier's logic against the in-memory cluster (the same plugin-data
 * compare-and-swap as the gRPC test server's) and a recording mailer, on a
 * fake clock. The same behaviour is
 * proven over real gRPC and SMTP in tests/notify_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { NotifyApp } from "./app.ts";
import { MailError, type OutgoingEmail } from "../mail/mailer.ts";
import type { AccessRequest, AccessReview } from "../teleport/types.ts";
import { FakeClock } from "../lib/clock.ts";
import type { MessageContent } from "./message.ts";
import { Activity } from "../lib/activity.ts";
import { FAKE_PING, FakeTeleportClient } from "../../tests/fake_cluster.ts";

function request(id: string, patch: Partial<AccessRequest> = {}): AccessRequest {
  return {
    id,
    user: "alice@example.com",
    roles: ["editor"],
    state: "PENDING",
    requestReason: "hotfix",
    resolveReason: "",
    systemAnnotations: {},
    reviews: [],
    suggestedReviewers: ["bob@example.com", "carol@example.com"],
    requestedResources: [],
    loginHint: "",
    ...patch,
  };
}

function review(author: string, state: "APPROVED" | "DENIED", reason: string): AccessReview {
  return { author, roles: [], proposedState: state, reason, created: new Date(1795392600_000) };
}

interface Sent extends OutgoingEmail {
  messageId: string;
}

function setup(
  teleport = new FakeTeleportClient(),
  opts: {
    owner?: string;
    fail?: (e: OutgoingEmail, n: number) => Error | undefined;
    claimTtlMs?: number;
    clock?: FakeClock;
    prepare?: (content: MessageContent) => () => void;
    openEnvelopes?: (recipients: readonly string[]) => () => void;
    maxRecipients?: number;
  } = {},
) {
  const clock = opts.clock ?? new FakeClock(Date.UTC(2026, 10, 23));
  const activity = new Activity();
  const sent: Sent[] = [];
  let n = 0;
  const app = new NotifyApp({
    client: teleport,
    send: (email) => {
      const error = opts.fail?.(email, n++);
      if (error) return Promise.reject(error);
      const messageId = `m${sent.length + 1}.${opts.owner ?? "a"}@example.com`;
      sent.push({ ...email, messageId });
      return Promise.resolve({ messageId });
    },
    cluster: FAKE_PING,
    roleToRecipients: { "*": ["ops@example.com"] },
    owner: opts.owner ?? "a",
    log: getLogger(["test"]),
    retryBackoff: { baseMs: 5, capMs: 20 },
    mailRetryBackoff: { baseMs: 5, capMs: 20 },
    clock,
    activity,
    ...(opts.claimTtlMs ? { claimTtlMs: opts.claimTtlMs } : {}),
    ...(opts.prepare ? { prepare: opts.prepare } : {}),
    ...(opts.openEnvelopes ? { openEnvelopes: opts.openEnvelopes } : {}),
    ...(opts.maxRecipients ? { maxRecipients: opts.maxRecipients } : {}),
  });
  return { app, sent, teleport, clock, activity };
}

const signal = () => AbortSignal.timeout(5000);

async function put(app: NotifyApp, teleport: FakeTeleportClient, r: AccessRequest) {
  teleport.requests.set(r.id, r);
  await app.handleEvent({ type: "put", kind: "access_request", request: r }, signal());
}

Deno.test("a new request: one thread per recipient, recorded in Go's format, claim released", async () => {
  const { app, sent, teleport } = setup();
  await put(app, teleport, request("r1"));
  assert.deepEqual(sent.map((e) => e.to), [
    "ops@example.com",
    "bob@example.com",
    "carol@example.com",
  ]);
  for (const e of sent) {
    assert.equal(e.subject, "teleport.example.com Role Request r1");
    assert.equal(e.inReplyTo, undefined);
    assert.match(e.text, /^You have a new Role Request:/);
  }
  const stored = teleport.data.get("r1")!;
  assert.equal(stored.user, "alice@example.com");
  assert.equal(stored.roles, "editor");
  assert.equal(stored.email_claim, undefined);
  const threads = stored.email_threads!.split(",").map((t) => t.split("/"));
  assert.deepEqual(threads.map((t) => [t[0], t[2]]).sort(), [
    ["bob@example.com", "m2.a@example.com"],
    ["carol@example.com", "m3.a@example.com"],
    ["ops@example.com", "m1.a@example.com"],
  ]);
  // The same event again sends nothing.
  await put(app, teleport, request("r1"));
  assert.equal(sent.length, 3);
});

Deno.test("a new request's opening email is given to the mailer to prepare while its record is written", async () => {
  const teleport = new FakeTeleportClient();
  const prepared: { content: MessageContent; recorded: boolean; sent: number }[] = [];
  let forgotten = 0;
  const { app, sent } = setup(teleport, {
    prepare: (content) => {
      prepared.push({ content, recorded: teleport.data.has("r1"), sent: sent.length });
      return () => forgotten++;
    },
  });
  await put(app, teleport, request("r1"));
  assert.equal(prepared.length, 1);
  assert.equal(prepared[0]!.recorded, false);
  assert.equal(prepared[0]!.sent, 0);
  // What was prepared is what each recipient got; it was used, so not forgotten.
  assert.equal(sent.length, 3);
  for (const e of sent) {
    assert.equal(e.text, prepared[0]!.content.text);
    assert.equal(e.html, prepared[0]!.content.html);
  }
  assert.equal(forgotten, 0);
  // A review is not a new request: nothing more to prepare.
  await put(
    app,
    teleport,
    request("r1", { reviews: [review("bob@example.com", "APPROVED", "ok")] }),
  );
  assert.equal(prepared.length, 1);
});

Deno.test("a prepared email is forgotten, envelopes opened ahead released, when another instance created the record first", async () => {
  const teleport = new FakeTeleportClient();
  const first = setup(teleport, { owner: "b" });
  await put(first.app, teleport, request("r1"));
  assert.equal(first.sent.length, 3);
  let forgotten = 0;
  let released = 0;
  const second = setup(teleport, {
    owner: "a",
    prepare: () => () => forgotten++,
    openEnvelopes: () => () => released++,
  });
  await put(second.app, teleport, request("r1"));
  assert.equal(second.sent.length, 0);
  assert.equal(forgotten, 1);
  assert.equal(released, 1);
});

Deno.test("a new request's recipients are given to the mailer to open ahead while its record is written", async () => {
  const teleport = new FakeTeleportClient();
  const opened: { recipients: readonly string[]; recorded: boolean; sent: number }[] = [];
  let released = 0;
  const order: string[] = [];
  const { app, sent } = setup(teleport, {
    maxRecipients: 2,
    openEnvelopes: (recipients) => {
      order.push("open");
      opened.push({ recipients, recorded: teleport.data.has("r1"), sent: sent.length });
      return () => released++;
    },
    prepare: () => {
      order.push("prepare");
      return () => {};
    },
  });
  await put(app, teleport, request("r1"));
  // The transactions are opened first: their commands do not wait for the composing.
  assert.deepEqual(order, ["open", "prepare"]);
  // Only the recipients emailed (delivery.max_recipients), before the record and any email.
  assert.deepEqual(opened, [{
    recipients: ["ops@example.com", "bob@example.com"],
    recorded: false,
    sent: 0,
  }]);
  assert.deepEqual(sent.map((e) => e.to), ["ops@example.com", "bob@example.com"]);
  assert.equal(released, 0);
  await put(
    app,
    teleport,
    request("r1", { reviews: [review("bob@example.com", "APPROVED", "ok")] }),
  );
  assert.equal(opened.length, 1);
});

Deno.test("with more recipients than delivery.max_recipients, the prepared email is the one sent", async () => {
  const teleport = new FakeTeleportClient();
  const prepared: MessageContent[] = [];
  const { app, sent } = setup(teleport, {
    maxRecipients: 2,
    prepare: (content) => {
      prepared.push(content);
      return () => {};
    },
  });
  await put(app, teleport, request("r1"));
  assert.equal(sent.length, 2);
  assert.equal(prepared.length, 1);
  // The email says one recipient was not emailed; the prepared one says the same.
  assert.match(sent[0]!.text, /1 more reviewer\(s\) of this request were not emailed/);
  for (const e of sent) {
    assert.equal(e.text, prepared[0]!.text);
    assert.equal(e.html, prepared[0]!.html);
  }
});

Deno.test("a mailer whose prepare throws costs no email", async () => {
  const { app, sent, teleport } = setup(undefined, {
    prepare: () => {
      throw new Error("boom");
    },
  });
  await put(app, teleport, request("r1"));
  assert.equal(sent.length, 3);
});

Deno.test("two reviews then approval: replies in order, then the resolution, once", async () => {
  const { app, sent, teleport } = setup();
  await put(app, teleport, request("r2"));
  const r1 = review("bob@example.com", "APPROVED", "fine");
  await put(app, teleport, request("r2", { reviews: [r1] }));
  const r2 = review("carol@example.com", "APPROVED", "okay");
  await put(
    app,
    teleport,
    request("r2", { reviews: [r1, r2], state: "APPROVED", resolveReason: "okay" }),
  );
  const toBob = sent.filter((e) => e.to === "bob@example.com").map((e) => e.text.split("\n")[0]);
  assert.deepEqual(toBob, [
    "You have a new Role Request:",
    "bob@example.com reviewed the request at 23 Nov 26 00:10 UTC.",
    "carol@example.com reviewed the request at 23 Nov 26 00:10 UTC.",
    "Role Request has been resolved:",
  ]);
  assert.match(sent.at(-1)!.text, /Status: ✅ APPROVED \(okay\)/);
  const root = sent.find((e) => e.to === "bob@example.com")!.messageId;
  for (const e of sent.filter((e) => e.to === "bob@example.com" && e.inReplyTo)) {
    assert.equal(e.inReplyTo, root);
  }
  const stored = teleport.data.get("r2")!;
  assert.equal(stored.reviews_count, "2");
  assert.equal(stored.resolution, "APPROVED");
  assert.equal(stored.resolve_reason, "okay");
  assert.equal(stored.email_replies, undefined, "folded into Go's aggregate keys");
  const count = sent.length;
  await put(app, teleport, request("r2", { reviews: [r1, r2], state: "APPROVED" }));
  assert.equal(sent.length, count, "nothing sent twice");
});

Deno.test("deleted request: EXPIRED reply in every thread", async () => {
  const { app, sent, teleport } = setup();
  await put(app, teleport, request("r3"));
  teleport.requests.delete("r3");
  await app.handleEvent({ type: "delete", kind: "access_request", name: "r3" }, signal());
  const expired = sent.filter((e) => /Status: ⌛ EXPIRED/.test(e.text));
  assert.equal(expired.length, 3);
  assert.equal(teleport.data.get("r3")!.resolution, "EXPIRED");
});

Deno.test("a recipient refused for good is logged and not retried; the others get theirs", async () => {
  const { app, sent, teleport } = setup(undefined, {
    fail: (e) =>
      e.to === "bob@example.com"
        ? new MailError("550 no such user", { transient: false, recipient: e.to })
        : undefined,
  });
  await put(app, teleport, request("r4"));
  assert.deepEqual(sent.map((e) => e.to), ["ops@example.com", "carol@example.com"]);
  assert.equal(teleport.data.get("r4")!.email_failed, "bob@example.com");
  assert.equal(app.retryQueueDepth, 0);
});

Deno.test("a transient failure is retried later without repeating what was sent", async () => {
  let failures = 2;
  const carolTries: OutgoingEmail[] = [];
  const { app, sent, teleport, clock, activity } = setup(undefined, {
    fail: (e) => {
      if (e.to !== "carol@example.com") return undefined;
      carolTries.push(e);
      return failures-- > 0 ? new MailError("421 try later", { transient: true }) : undefined;
    },
  });
  await put(app, teleport, request("r5"));
  assert.equal(app.retryQueueDepth, 1);
  assert.equal(sent.length, 2);
  // Each retry is due within the backoff's cap (20 ms); two of them fail.
  for (let i = 0; i < 2; i++) {
    await clock.tick(20);
    await activity.idle();
  }
  assert.equal(app.retryQueueDepth, 0);
  assert.deepEqual(sent.map((e) => e.to).sort(), [
    "bob@example.com",
    "carol@example.com",
    "ops@example.com",
  ]);
  // Every try is the same email to the mailer, which keeps its Message-ID for it.
  assert.equal(carolTries.length, 3);
  assert.ok(carolTries.every((e) => e === carolTries[0]), "the same email object each try");
  app.stop();
});

Deno.test("an instance that died mid-send: after its claim expires another sends only what is missing", async () => {
  const teleport = new FakeTeleportClient();
  const clock = new FakeClock(Date.UTC(2026, 10, 23));
  const dying = setup(teleport, {
    owner: "dead",
    claimTtlMs: 50,
    clock,
    fail: (_e, n) => (n >= 1 ? new Error("killed") : undefined),
  });
  // Simulate the crash: the first email goes out, then the process is gone
  // (its claim stays behind, its retries never run).
  await put(dying.app, teleport, request("r6"));
  dying.app.stop();
  assert.equal(dying.sent.length, 1);
  teleport.data.set("r6", {
    ...teleport.data.get("r6")!,
    email_claim: `dead;${clock.now() + 50}`,
  });

  const next = setup(teleport, { owner: "b", claimTtlMs: 50, clock });
  await put(next.app, teleport, request("r6"));
  assert.equal(next.sent.length, 0, "the claim is still live");
  assert.equal(next.app.retryQueueDepth, 1, "looks again when the claim expires");
  await clock.tick(49);
  assert.equal(next.sent.length, 0, "not before the claim expired");
  await clock.tick(2);
  await next.activity.idle();
  assert.deepEqual(next.sent.map((e) => e.to), ["bob@example.com", "carol@example.com"]);
  next.app.stop();
});

Deno.test("two instances handling the same events send every email once", async () => {
  const teleport = new FakeTeleportClient();
  const a = setup(teleport, { owner: "a" });
  const b = setup(teleport, { owner: "b" });
  const reqs = Array.from({ length: 8 }, (_, i) => request(`race-${i}`));
  for (const r of reqs) teleport.requests.set(r.id, r);
  await Promise.all(
    reqs.flatMap((r) =>
      [a, b].map(({ app }) =>
        app.handleEvent({ type: "put", kind: "access_request", request: r }, signal())
      )
    ),
  );
  const approved = reqs.map((r) =>
    request(r.id, {
      state: "APPROVED",
      resolveReason: "ok",
      reviews: [review("bob@example.com", "APPROVED", "ok")],
    })
  );
  for (const r of approved) teleport.requests.set(r.id, r);
  await Promise.all(
    approved.flatMap((r) =>
      [a, b].map(({ app }) =>
        app.handleEvent({ type: "put", kind: "access_request", request: r }, signal())
      )
    ),
  );
  const all = [...a.sent, ...b.sent];
  const keys = all.map((e) => `${e.to} ${e.text.split("\n")[0]} ${e.subject}`);
  assert.equal(new Set(keys).size, keys.length, "no email twice");
  assert.equal(all.length, 8 * 3 * 3, "new + review + resolution for 3 recipients of 8 requests");
  a.app.stop();
  b.app.stop();
});

Deno.test("records written by the Go plugin are continued: replies go into its threads", async () => {
  const { app, sent, teleport } = setup();
  teleport.data.set("go-1", {
    user: "alice@example.com",
    roles: "editor",
    request_reason: "hotfix",
    email_threads:
      "ops@example.com/2026-11-22 10:00:00.5 +0000 UTC m=+1.0/1D4Q8ZC3K2ABC.3W5E11264SGSF@host,bob@example.com/2026-11-22 10:00:01 +0000 UTC/<20261122100001.1.abc@mg.example.com>",
  });
  await put(
    app,
    teleport,
    request("go-1", { state: "DENIED", resolveReason: "not okay" }),
  );
  assert.deepEqual(sent.map((e) => [e.to, e.inReplyTo]), [
    ["ops@example.com", "1D4Q8ZC3K2ABC.3W5E11264SGSF@host"],
    ["bob@example.com", "20261122100001.1.abc@mg.example.com"],
  ]);
  assert.match(sent[0]!.text, /Status: ❌ DENIED \(not okay\)/);
  assert.equal(teleport.data.get("go-1")!.resolution, "DENIED");
});

Deno.test("reconcile finds requests created, reviewed or deleted while away", async () => {
  const { app, sent, teleport } = setup();
  await put(app, teleport, request("seen"));
  await put(app, teleport, request("gone"));
  teleport.requests.delete("gone");
  teleport.requests.set("new", request("new"));
  teleport.requests.set(
    "seen",
    request("seen", { state: "APPROVED", resolveReason: "ok" }),
  );
  const before = sent.length;
  const tasks = await app.reconcile(signal());
  assert.deepEqual(tasks.map((t) => t.key).sort(), [
    "access_request/gone",
    "access_request/new",
    "access_request/seen",
  ]);
  for (const t of tasks) await t.run(signal());
  const after = sent.slice(before).map((e) =>
    `${e.subject.split(" ").at(-1)} ${e.text.split("\n")[0]}`
  );
  assert.equal(after.filter((l) => l.startsWith("new You have a new")).length, 3);
  assert.equal(after.filter((l) => l === "seen Role Request has been resolved:").length, 3);
  assert.equal(after.filter((l) => l === "gone Role Request has been resolved:").length, 3);
  assert.equal((await app.reconcile(signal())).length, 0, "nothing left after");
});

Deno.test("a new request with three recipients costs two writes and no read: the create (the claim), then its threads with the release", async () => {
  const { app, sent, teleport } = setup();
  await put(app, teleport, request("w1"));
  assert.equal(sent.length, 3);
  assert.equal(teleport.callCount("updatePluginData"), 2, JSON.stringify(teleport.updates));
  assert.equal(teleport.callCount("getPluginData"), 0, "a new request's record is created unread");
  const stored = teleport.data.get("w1")!;
  assert.equal(stored.email_threads!.split(",").length, 3);
  assert.equal(stored.email_claim, undefined, "released in the same write");
});

Deno.test("records the cluster refuses as too large: logged, not retried, and no email twice", async () => {
  const { app, sent, teleport } = setup();
  // The create goes through; every record after it is refused as too large.
  let writes = 0;
  teleport.beforeCall = (call) => {
    if (call.method === "updatePluginData" && writes++ > 0) {
      throw { code: 8, details: "request is too large" };
    }
  };
  await put(app, teleport, request("big"));
  assert.equal(sent.length, 3);
  assert.equal(app.retryQueueDepth, 0, "too large is permanent");
  // The same request again (a review, a reconcile): nothing is sent twice.
  await put(app, teleport, request("big"));
  const tasks = await app.reconcile(signal());
  for (const task of tasks) await task.run(signal());
  assert.equal(sent.length, 3);
  // A review still goes out, once, into the threads kept in memory.
  const r1 = review("bob@example.com", "APPROVED", "fine");
  await put(app, teleport, request("big", { reviews: [r1] }));
  await put(app, teleport, request("big", { reviews: [r1] }));
  assert.equal(sent.length, 6);
  assert.equal(new Set(sent.slice(3).map((e) => e.inReplyTo)).size, 3, "in each thread");
});

Deno.test("plugin data stays small: recipients capped, the stored reason cut", async () => {
  const { app, sent, teleport } = setup();
  const many = Array.from({ length: 2_000 }, (_, i) => `reviewer${i}@example.com`);
  await put(
    app,
    teleport,
    request("huge", { suggestedReviewers: many, requestReason: "x".repeat(100_000) }),
  );
  assert.equal(sent.length, 100, "delivery.max_recipients (default 100)");
  assert.equal(sent[0]!.to, "ops@example.com");
  const stored = teleport.data.get("huge")!;
  const bytes = new TextEncoder().encode(JSON.stringify(stored)).length;
  assert.ok(bytes < 40_000, `${bytes} bytes of plugin data`);
  assert.equal(stored.email_not_emailed, "1901", "2,001 recipients, 100 emailed");
  assert.match(sent[0]!.text, /Note: 1901 more reviewer\(s\) of this request were not emailed/);
  assert.equal(stored.request_reason!.length, 1_000);
  assert.ok(stored.request_reason!.endsWith("…"));
  assert.equal(teleport.callCount("updatePluginData"), 2);
});

Deno.test("a first start catches up pending requests of the last day only (delivery.catch_up_window)", async () => {
  const { app, sent, teleport, clock } = setup();
  const now = clock.now();
  teleport.requests.set("fresh", request("fresh", { created: new Date(now - 3_600_000) }));
  teleport.requests.set("stale", request("stale", { created: new Date(now - 3 * 86_400_000) }));
  // A stale request some instance already handled is followed up all the same.
  await put(app, teleport, request("handled", { created: new Date(now - 3 * 86_400_000) }));
  teleport.requests.set(
    "handled",
    request("handled", {
      created: new Date(now - 3 * 86_400_000),
      state: "APPROVED",
      resolveReason: "ok",
    }),
  );
  const before = sent.length;
  const tasks = await app.reconcile(signal());
  assert.deepEqual(tasks.map((t) => t.key).sort(), [
    "access_request/fresh",
    "access_request/handled",
  ]);
  for (const t of tasks) await t.run(signal());
  assert.deepEqual(
    [...new Set(sent.slice(before).map((e) => e.subject.split(" ").at(-1)))].sort(),
    ["fresh", "handled"],
  );
  // An event for the stale request (it changed) is handled as usual.
  await put(app, teleport, request("stale", { created: new Date(now - 3 * 86_400_000) }));
  assert.ok(sent.some((e) => e.subject.endsWith(" stale")));
});
