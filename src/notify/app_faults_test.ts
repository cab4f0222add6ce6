/**
 * The notifier when the cluster fails it at awkward moments: a record's write
 * failing while another send of the request is still running, a retry whose
 * re-read fails, a reconcile racing another replica, a due check working from
 * an old listing. On the in-memory cluster and a fake clock; each test fails
 * (or crashes the test runner) without the change it came with.
 */
import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { getLogger } from "@logtape/logtape";
import { type AppDeps, NotifyApp } from "./app.ts";
import { MailError, type OutgoingEmail, type SentEmail } from "../mail/mailer.ts";
import type { AccessRequest } from "../teleport/types.ts";
import { FakeClock } from "../lib/clock.ts";
import { Activity } from "../lib/activity.ts";
import { FAKE_PING, FakeTeleportClient } from "../../tests/fake_cluster.ts";
import { newAccessRequest } from "../../tests/requests.ts";

const START = Date.UTC(2026, 10, 23);

/** A pending request of alice@ for editor, created at the fake clock's start. */
function request(id: string, patch: Partial<AccessRequest> = {}): AccessRequest {
  return newAccessRequest(id, { requestReason: "hotfix", created: new Date(START), ...patch });
}

type Send = (email: OutgoingEmail) => Promise<SentEmail>;

function setup(
  opts: {
    send?: Send;
    deps?: Partial<AppDeps>;
    owner?: string;
    teleport?: FakeTeleportClient;
    clock?: FakeClock;
  } = {},
) {
  const teleport = opts.teleport ?? new FakeTeleportClient();
  const clock = opts.clock ?? new FakeClock(START);
  const activity = new Activity();
  const sent: OutgoingEmail[] = [];
  const send: Send = opts.send ?? (() => Promise.resolve({ messageId: `m${sent.length}@x` }));
  const app = new NotifyApp({
    client: teleport,
    send: async (email) => {
      const result = await send(email);
      sent.push(email);
      return result;
    },
    cluster: FAKE_PING,
    roleToRecipients: { "*": ["ops@example.com"] },
    owner: opts.owner ?? "a",
    log: getLogger(["test"]),
    // Retries after exactly 1 s (no jitter).
    retryBackoff: { baseMs: 1_000, capMs: 1_000 },
    mailRetryBackoff: { baseMs: 1_000, capMs: 1_000 },
    random: () => 1,
    clock,
    activity,
    ...opts.deps,
  });
  return { app, teleport, clock, activity, sent };
}

const signal = () => AbortSignal.timeout(5_000);
const to = (sent: OutgoingEmail[]) => sent.map((e) => e.to).sort();

Deno.test("a record that fails to be written while another send of the request runs does not end the process", async () => {
  let releaseSlow!: () => void;
  const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
  const { app, teleport, clock, sent } = setup({
    send: async (email) => {
      if (email.to === "slow@example.com") await slow;
      return { messageId: `${email.to}.id@x` };
    },
  });
  let updates = 0;
  teleport.beforeCall = (call) => {
    // The first update is the create (the claim); the second, ops@'s record, is refused.
    if (call.method === "updatePluginData" && ++updates === 2) {
      throw { code: status.PERMISSION_DENIED, details: "access denied" };
    }
  };
  const r1 = request("r1", { suggestedReviewers: ["slow@example.com"] });
  teleport.requests.set("r1", r1);
  const handled = app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  // ops@'s record waits for the coalescing window, then its write fails; slow@ still sends.
  await clock.tick(150);
  assert.equal(updates, 2);
  releaseSlow();
  await handled;
  assert.deepEqual(to(sent), ["ops@example.com", "slow@example.com"]);
  // The request is tried again later; what went out is not sent again.
  teleport.beforeCall = undefined;
  await clock.tick(5_000);
  app.stop();
  assert.deepEqual(to(sent), ["ops@example.com", "slow@example.com"]);
  const threads = teleport.data.get("r1")?.email_threads ?? "";
  assert.match(threads, /ops@example\.com/);
  assert.match(threads, /slow@example\.com/);
});

Deno.test("a retry whose re-read of the request fails is tried again, not dropped", async () => {
  let smtpDown = true;
  const { app, teleport, clock, sent } = setup({
    send: () =>
      smtpDown
        ? Promise.reject(new MailError("451 try again later", { transient: true }))
        : Promise.resolve({ messageId: "m@x" }),
  });
  const r1 = request("r1");
  teleport.requests.set("r1", r1);
  await app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  assert.equal(app.retryQueueDepth, 1);
  smtpDown = false;
  // The retry's re-read of the request meets an auth server restarting.
  teleport.failNext("listAccessRequests", { code: status.UNAVAILABLE, details: "restarting" });
  await clock.tick(1_500);
  assert.equal(teleport.callCount("listAccessRequests"), 1);
  assert.deepEqual(to(sent), []);
  assert.equal(app.retryQueueDepth, 1);
  await clock.tick(1_500);
  app.stop();
  assert.deepEqual(to(sent), ["ops@example.com"]);
});

Deno.test("a reconcile racing another replica's new request does not take it for deleted", async () => {
  const a = setup({ owner: "a" });
  const b = setup({ owner: "b", teleport: a.teleport, clock: a.clock });
  const r1 = request("r1");
  // While replica A reconciles, r1 is created and replica B emails it and writes its record.
  a.teleport.beforeCall = async (call) => {
    if (call.method !== "listPluginData") return;
    for (let i = 0; i < 10; i++) await Promise.resolve(); // a listing started with it answers
    a.teleport.requests.set("r1", r1);
    await b.app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  };
  const tasks = await a.app.reconcile(signal());
  a.teleport.beforeCall = undefined;
  for (const task of tasks) await task.run(signal());
  assert.deepEqual(to(b.sent), ["ops@example.com"]);
  // A sends nothing: no "expired" email for a request that is alive.
  assert.deepEqual(to(a.sent), []);
  assert.equal(a.teleport.data.get("r1")?.resolution ?? "", "");
  // Its approval later reaches the thread B opened.
  const approved = { ...r1, state: "APPROVED" as const, resolveReason: "ok" };
  a.teleport.requests.set("r1", approved);
  await a.app.handleEvent({ type: "put", kind: "access_request", request: approved }, signal());
  a.app.stop();
  b.app.stop();
  assert.equal(a.sent.length, 1);
  assert.match(a.sent[0]!.text, /APPROVED/);
});

Deno.test("suggested reviewers that are not addresses are logged in one line, however many", async () => {
  const warnings: { message: string; props: Record<string, unknown> }[] = [];
  const log = {
    warn: (message: string, props: Record<string, unknown>) => warnings.push({ message, props }),
    info: () => {},
    debug: () => {},
    error: () => {},
    with: () => log,
    getChild: () => log,
  };
  const { app, teleport, sent } = setup({ deps: { log: log as unknown as AppDeps["log"] } });
  const junk = Array.from({ length: 10_000 }, (_, i) => `x${i} requestId=forged`);
  const r1 = request("r1", { suggestedReviewers: [...junk, "bob@example.com"] });
  teleport.requests.set("r1", r1);
  await app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  app.stop();
  assert.deepEqual(to(sent), ["bob@example.com", "ops@example.com"]);
  const notEmailed = warnings.filter((w) => w.message.startsWith("Not emailing"));
  assert.equal(notEmailed.length, 1);
  assert.equal(notEmailed[0]!.props.count, 10_000);
  const shown = String(notEmailed[0]!.props.recipients);
  assert.ok(shown.startsWith('["x0 requestId=forged","x1 requestId=forged",'), shown);
  assert.ok(shown.endsWith('"x9 requestId=forged"] …'), shown);
});

Deno.test("a due check sends no reminder for a request reviewed since its listing", async () => {
  let releaseFirst: (() => void) | undefined;
  let holding = false;
  const { app, teleport, clock, sent } = setup({
    deps: { reminders: { afterMs: 3_600_000, everyMs: 3_600_000, max: 3 } },
    send: async (email) => {
      // r0's reminder is held, so the check still has r1 (as listed) to do.
      if (holding && /r0/.test(email.subject) && releaseFirst === undefined) {
        await new Promise<void>((resolve) => (releaseFirst = resolve));
      }
      return { messageId: `${email.to}.${sent.length}@x` };
    },
  });
  for (const id of ["r0", "r1"]) {
    const r = request(id);
    teleport.requests.set(id, r);
    await app.handleEvent({ type: "put", kind: "access_request", request: r }, signal());
  }
  await clock.tick(2 * 3_600_000);
  sent.length = 0;
  holding = true;
  const check = app.checkDue(signal());
  for (let i = 0; i < 1_000 && releaseFirst === undefined; i++) await clock.tick(0);
  assert.ok(releaseFirst, "r0's reminder was not sent");
  // Meanwhile r1 gets a review (still pending: it needs another), and its event is handled.
  const reviewed = request("r1", {
    reviews: [{
      author: "bob@example.com",
      roles: [],
      proposedState: "APPROVED",
      reason: "ok",
      created: new Date(clock.now()),
    }],
  });
  teleport.requests.set("r1", reviewed);
  await app.handleEvent({ type: "put", kind: "access_request", request: reviewed }, signal());
  const afterReview = sent.length;
  releaseFirst();
  await check;
  app.stop();
  // r0 got its reminder; r1, reviewed, none.
  assert.deepEqual(sent.slice(afterReview).map((e) => e.subject.match(/r\d/)?.[0]), ["r0"]);
  assert.ok(!sent.some((e) => /r1/.test(e.subject) && /reminder|waiting/i.test(e.text)));
});

Deno.test("stopping during a due check: its email in flight is recorded, not sent again by the next start", async () => {
  let release: (() => void) | undefined;
  let holding = false;
  const reminders = { afterMs: 3_600_000, everyMs: 3_600_000, max: 3 };
  const a = setup({
    deps: { reminders, shutdownGraceMs: 10_000 },
    send: async (email) => {
      if (holding && release === undefined) await new Promise<void>((r) => (release = r));
      return { messageId: `${email.to}.${Math.random()}@x` };
    },
  });
  const r1 = request("r1");
  a.teleport.requests.set("r1", r1);
  await a.app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  const stop = new AbortController();
  a.app.startDueChecks(60_000, stop.signal);
  holding = true;
  await a.clock.tick(3_600_000 + 60_000);
  for (let i = 0; i < 1_000 && release === undefined; i++) await a.clock.tick(0);
  assert.ok(release, "the reminder was not sent");
  // SIGTERM while the reminder is with the mail server.
  stop.abort(new Error("SIGTERM"));
  a.app.beginStop();
  a.app.flushRecords();
  await a.clock.tick(0);
  release();
  await a.clock.tick(200);
  await a.app.drain();
  const remindersSent = a.sent.length - 1;
  assert.equal(remindersSent, 1);
  // The next start finds the reminder on record.
  const b = setup({ deps: { reminders }, teleport: a.teleport, clock: a.clock });
  await b.app.checkDue(signal());
  b.app.stop();
  assert.deepEqual(b.sent, []);
});

Deno.test("a reconcile whose records do not fit one answer reads each request's own", async () => {
  const { app, teleport } = setup();
  // r1 was handled before the restart; r2 was created while no instance ran.
  const r1 = request("r1");
  teleport.requests.set("r1", r1);
  await app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  const { app: restarted, sent } = setup({ teleport });
  const r2 = request("r2");
  teleport.requests.set("r2", r2);
  teleport.failNext("listPluginData", {
    code: status.RESOURCE_EXHAUSTED,
    details: "Received message larger than max (5242880 vs 4194304)",
  });
  const tasks = await restarted.reconcile(signal());
  for (const task of tasks) await task.run(signal());
  app.stop();
  restarted.stop();
  assert.deepEqual(tasks.map((t) => t.key), ["access_request/r2"]);
  assert.deepEqual(to(sent), ["ops@example.com"]);
  assert.match(sent[0]!.subject, /r2/);
  assert.ok(teleport.data.get("r2")?.email_threads?.includes("ops@example.com"));
});

Deno.test("stopping writes the records of emails sent whose write failed, before the next start could resend them", async () => {
  const { app, teleport, clock, sent } = setup();
  let updates = 0;
  teleport.beforeCall = (call) => {
    // The create (the claim) passes; the record of the email sent is refused once.
    if (call.method === "updatePluginData" && ++updates === 2) {
      throw { code: status.PERMISSION_DENIED, details: "access denied" };
    }
  };
  const r1 = request("r1");
  teleport.requests.set("r1", r1);
  await app.handleEvent({ type: "put", kind: "access_request", request: r1 }, signal());
  assert.deepEqual(to(sent), ["ops@example.com"]);
  assert.doesNotMatch(teleport.data.get("r1")?.email_threads ?? "", /ops@/);
  // SIGTERM before the retry (1 s) is due.
  app.beginStop();
  await clock.tick(0);
  await app.drain();
  assert.match(teleport.data.get("r1")?.email_threads ?? "", /ops@example\.com/);
  // The next start has nothing to send.
  const next = setup({ teleport, clock });
  const tasks = await next.app.reconcile(signal());
  for (const task of tasks) await task.run(signal());
  next.app.stop();
  assert.deepEqual(next.sent, []);
  assert.equal(sent.length, 1);
});
