/**
 * Escalation and warnings before granted access ends (issue 15), on the
 * in-memory cluster and a fake clock driven through the app's one
 * scheduler (`startDueChecks`): due, not due, stopped by a review or the
 * resolution, after downtime, after a restart (a new app on the same
 * cluster) and with two replicas. Over real gRPC and SMTP in
 * tests/escalation_e2e_test.ts.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { type AppDeps, NotifyApp } from "./app.ts";
import type { OutgoingEmail } from "../mail/mailer.ts";
import type { AccessRequest, AccessReview } from "../teleport/types.ts";
import { FakeClock } from "../lib/clock.ts";
import { Activity } from "../lib/activity.ts";
import { NO_METRICS } from "../lib/metrics.ts";
import { FAKE_PING, FakeTeleportClient, newAccessRequest } from "../../tests/fake_cluster.ts";
import type { AccessExpiryPolicy, EscalationPolicy } from "./plan.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** The scheduler's period in these tests. */
const CHECK_MS = MINUTE;
const T0 = Date.UTC(2026, 10, 23);

const OPS = "ops@example.com";
const BOB = "bob@example.com";
const ALICE = "alice@example.com";
const LEAD = "lead@example.com";
const DBA_LEAD = "dba-lead@example.com";
const CTO = "cto@example.com";

const ESCALATION: EscalationPolicy = {
  levels: [
    { afterMs: 4 * HOUR, recipients: [LEAD], roleToRecipients: { dba: [DBA_LEAD] } },
    { afterMs: 24 * HOUR, recipients: [CTO], roleToRecipients: {} },
  ],
};
const EXPIRY: AccessExpiryPolicy = { warnBeforeMs: [24 * HOUR, 1 * HOUR] };

interface Sent extends OutgoingEmail {
  readonly messageId: string;
  readonly by: string;
}

/** One instance of the plugin's notifier, its scheduler started. */
function instance(
  teleport: FakeTeleportClient,
  clock: FakeClock,
  sent: Sent[],
  o: { owner?: string; notifyRequester?: boolean; kinds?: string[]; deps?: Partial<AppDeps> } = {},
) {
  const owner = o.owner ?? "a";
  const activity = new Activity();
  const stop = new AbortController();
  const deps: AppDeps = {
    client: teleport,
    send: (email) => {
      const messageId = `m${sent.length + 1}.${owner}@example.com`;
      sent.push({ ...email, messageId, by: owner });
      return Promise.resolve({ messageId });
    },
    cluster: FAKE_PING,
    roleToRecipients: { "*": [OPS] },
    owner,
    log: getLogger(["test"]),
    retryBackoff: { baseMs: 5, capMs: 20 },
    clock,
    activity,
    escalation: ESCALATION,
    accessExpiry: EXPIRY,
    notifyRequester: o.notifyRequester ?? false,
    metrics: { ...NO_METRICS, emailSent: (kind) => o.kinds?.push(kind) },
    ...o.deps,
  };
  const app = new NotifyApp(deps);
  app.startDueChecks(CHECK_MS, stop.signal);
  return {
    app,
    activity,
    close() {
      stop.abort();
      app.stop();
    },
  };
}

type Instance = ReturnType<typeof instance>;

function setup(o: { notifyRequester?: boolean } = {}) {
  const teleport = new FakeTeleportClient();
  const clock = new FakeClock(T0);
  const sent: Sent[] = [];
  const kinds: string[] = [];
  const a = instance(teleport, clock, sent, { ...o, kinds });
  return { teleport, clock, sent, kinds, a };
}

const signal = () => AbortSignal.timeout(5000);

function request(id: string, patch: Partial<AccessRequest> = {}): AccessRequest {
  return newAccessRequest(id, {
    created: new Date(T0),
    requestReason: "hotfix",
    suggestedReviewers: [BOB],
    ...patch,
  });
}

function review(author: string): AccessReview {
  return { author, roles: [], proposedState: "APPROVED", reason: "ok", created: new Date(T0) };
}

async function put(i: Instance, teleport: FakeTeleportClient, r: AccessRequest) {
  teleport.requests.set(r.id, r);
  await i.app.handleEvent({ type: "put", kind: "access_request", request: r }, signal());
  await i.activity.idle();
}

/** Moves the clock to `at` as after a suspend (the scheduler runs once) and lets it finish. */
async function moveTo(clock: FakeClock, at: number, instances: readonly Instance[]) {
  await clock.skip(at - clock.now());
  for (let i = 0; i < 100; i++) {
    await Promise.all(instances.map((x) => x.activity.idle(false)));
    if (instances.every((x) => x.activity.waiting === 0)) return;
    await clock.next();
  }
  throw new Error("The instances did not settle");
}

/** `<to> <first line>` of each email from `from` on. */
function lines(sent: readonly Sent[], from = 0): string[] {
  return sent.slice(from).map((e) => `${e.to} ${e.text.split("\n")[0]}`);
}

const ESCALATED = "Escalation: this Role Request is still waiting for a review:";
const ENDS_SOON = "Your access from this Role Request ends soon:";

// ---------------------------------------------------------------------------
// Escalation

Deno.test("escalation: not before `after`; then a thread of their own with the facts, the wait and who was notified", async () => {
  const { teleport, clock, sent, kinds, a } = setup();
  await put(a, teleport, request("r1"));
  assert.deepEqual(lines(sent), [
    `${OPS} You have a new Role Request:`,
    `${BOB} You have a new Role Request:`,
  ]);

  await moveTo(clock, T0 + 4 * HOUR - MINUTE, [a]);
  assert.equal(sent.length, 2, "not before escalation.after");

  await moveTo(clock, T0 + 4 * HOUR, [a]);
  assert.deepEqual(lines(sent, 2), [`${LEAD} ${ESCALATED}`]);
  const email = sent[2]!;
  assert.equal(email.inReplyTo, undefined, "a thread of its own");
  assert.equal(email.subject, "teleport.example.com Role Request r1");
  assert.match(email.text, /^ID: r1$/m);
  assert.match(email.text, /^Reason: hotfix$/m);
  assert.match(email.text, /^Link: https:\/\/teleport\.example\.com\/web\/requests\/r1$/m);
  assert.match(email.text, /^Waiting for a review: 4h$/m);
  assert.match(email.text, new RegExp(`^Already notified: ${OPS}, ${BOB}$`, "m"));
  const data = teleport.data.get("r1")!;
  assert.equal(data.email_escalation_level, "1");
  assert.ok(data.email_escalation_threads?.startsWith(`${LEAD}/`));
  assert.ok(data.email_escalation_threads?.endsWith(`/${email.messageId}`));
  assert.equal(data.email_threads!.includes(LEAD), false, "not one of the reviewer threads");
  assert.ok(kinds.includes("escalation"), "counted by kind");

  // Checks every minute after that send nothing more, until the next level.
  await moveTo(clock, T0 + 5 * HOUR, [a]);
  await moveTo(clock, T0 + 24 * HOUR - MINUTE, [a]);
  assert.equal(sent.length, 3);
  await moveTo(clock, T0 + 24 * HOUR, [a]);
  assert.deepEqual(lines(sent, 3), [`${CTO} ${ESCALATED}`]);
  assert.match(sent[3]!.text, /^Waiting for a review: 1d$/m);
  assert.match(sent[3]!.text, new RegExp(`^Already notified: ${OPS}, ${BOB}, ${LEAD}$`, "m"));
  assert.equal(teleport.data.get("r1")!.email_escalation_level, "2");
  await moveTo(clock, T0 + 100 * HOUR, [a]);
  assert.equal(sent.length, 4, "once per level");
  a.close();
});

Deno.test('escalation: per-role lists replace the "*" list for their roles', async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("dba", { roles: ["dba"] }));
  await put(a, teleport, request("both", { roles: ["dba", "editor"] }));
  await moveTo(clock, T0 + 4 * HOUR, [a]);
  const escalations = sent.filter((e) => e.text.startsWith(ESCALATED))
    .map((e) => `${e.subject.split(" ").at(-1)} ${e.to}`).sort();
  assert.deepEqual(escalations, [`both ${DBA_LEAD}`, `both ${LEAD}`, `dba ${DBA_LEAD}`]);
  a.close();
});

Deno.test("escalation: a review stops it; later reviews and the resolution go into the escalation thread", async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("early"));
  await put(a, teleport, request("late"));
  await put(a, teleport, request("early", { reviews: [review(BOB)] }));
  await moveTo(clock, T0 + 4 * HOUR, [a]);
  const escalated = sent.filter((e) => e.text.startsWith(ESCALATED));
  assert.deepEqual(escalated.map((e) => e.subject.split(" ").at(-1)), ["late"]);
  const root = escalated[0]!.messageId;

  const before = sent.length;
  await put(a, teleport, request("late", { reviews: [review(BOB)] }));
  await put(
    a,
    teleport,
    request("late", { reviews: [review(BOB)], state: "APPROVED", resolveReason: "ok" }),
  );
  const toLead = sent.slice(before).filter((e) => e.to === LEAD);
  assert.deepEqual(toLead.map((e) => [e.text.split("\n")[0], e.inReplyTo]), [
    [`${BOB} reviewed the request at 23 Nov 26 00:00 UTC.`, root],
    ["Role Request has been resolved:", root],
  ]);
  assert.equal(teleport.data.get("late")!.email_escalation_replies, `${LEAD}=1+`);

  await moveTo(clock, T0 + 30 * HOUR, [a]);
  assert.equal(sent.filter((e) => e.text.startsWith(ESCALATED)).length, 1, "level 2 never sent");
  a.close();
});

Deno.test("escalation: the resolution stops it; an expired request replies EXPIRED in the escalation thread", async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("denied"));
  await put(a, teleport, request("gone"));
  await put(a, teleport, request("denied", { state: "DENIED", resolveReason: "no" }));
  await moveTo(clock, T0 + 4 * HOUR, [a]);
  assert.deepEqual(
    sent.filter((e) => e.text.startsWith(ESCALATED)).map((e) => e.subject.split(" ").at(-1)),
    ["gone"],
  );
  const root = sent.at(-1)!.messageId;
  teleport.requests.delete("gone");
  await a.app.handleEvent({ type: "delete", kind: "access_request", name: "gone" }, signal());
  const expired = sent.filter((e) => e.to === LEAD && e.inReplyTo === root);
  assert.equal(expired.length, 1);
  assert.match(expired[0]!.text, /Status: ⌛ EXPIRED/);
  a.close();
});

Deno.test("escalation: after downtime one catch-up send, of the latest level only", async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("r1"));
  await moveTo(clock, T0 + 30 * HOUR, [a]);
  assert.deepEqual(lines(sent, 2), [`${CTO} ${ESCALATED}`]);
  assert.match(sent[2]!.text, /^Waiting for a review: 1d6h$/m);
  assert.equal(teleport.data.get("r1")!.email_escalation_level, "2");
  await moveTo(clock, T0 + 31 * HOUR, [a]);
  assert.equal(sent.length, 3);
  a.close();
});

Deno.test("escalation: a restart (a new app on the same cluster) never sends a level twice", async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("r1"));
  await moveTo(clock, T0 + 4 * HOUR, [a]);
  assert.equal(sent.length, 3);
  a.close();

  const b = instance(teleport, clock, sent, { owner: "b" });
  for (const task of await b.app.reconcile(signal())) await task.run(signal());
  await moveTo(clock, T0 + 5 * HOUR, [b]);
  assert.equal(sent.length, 3, "level 1 is on record");
  await moveTo(clock, T0 + 24 * HOUR, [b]);
  assert.deepEqual(lines(sent, 3), [`${CTO} ${ESCALATED}`]);
  assert.equal(sent[3]!.by, "b");
  b.close();
});

Deno.test("escalation: two replicas on one clock send each escalation once", async () => {
  const { teleport, clock, sent, a } = setup();
  const b = instance(teleport, clock, sent, { owner: "b" });
  const reqs = Array.from({ length: 5 }, (_, i) => request(`race-${i}`));
  for (const r of reqs) await put(a, teleport, r);
  await moveTo(clock, T0 + 4 * HOUR, [a, b]);
  await moveTo(clock, T0 + 24 * HOUR, [a, b]);
  const escalations = sent.filter((e) => e.text.startsWith(ESCALATED))
    .map((e) => `${e.subject.split(" ").at(-1)} ${e.to}`);
  assert.equal(new Set(escalations).size, escalations.length, "none twice");
  assert.equal(escalations.length, 5 * 2, "two levels for five requests");
  a.close();
  b.close();
});

Deno.test("escalation: progress is kept by time, so a changed list of levels neither silences nor repeats one", async () => {
  // [what, escalated at (h), the new levels, then at (h), sent then]
  const cases: [string, number, EscalationPolicy["levels"], number, string[]][] = [
    [
      "the 4 h level removed: the 24 h one, now the first, is still due",
      5,
      [
        ESCALATION.levels[1]!,
      ],
      25,
      [`${CTO} ${ESCALATED}`],
    ],
    [
      "a 2 h level put before the 24 h one already sent: not sent late",
      25,
      [
        { afterMs: 2 * HOUR, recipients: [DBA_LEAD], roleToRecipients: {} },
        ...ESCALATION.levels,
      ],
      26,
      [],
    ],
  ];
  for (const [what, firstAt, levels, thenAt, want] of cases) {
    const { teleport, clock, sent, a } = setup();
    await put(a, teleport, request("r1"));
    await moveTo(clock, T0 + firstAt * HOUR, [a]);
    a.close();
    const before = sent.length;
    const b = instance(teleport, clock, sent, { owner: "b", deps: { escalation: { levels } } });
    for (const task of await b.app.reconcile(signal())) await task.run(signal());
    await moveTo(clock, T0 + thenAt * HOUR, [b]);
    await moveTo(clock, T0 + (thenAt + 1) * HOUR, [b]);
    assert.deepEqual(lines(sent, before), want, what);
    b.close();
  }
});

Deno.test("due checks: the backlog that the catch-up window kept from the reconcile gets no email from them either", async () => {
  const teleport = new FakeTeleportClient();
  const clock = new FakeClock(T0);
  const sent: Sent[] = [];
  // A first deployment: one request pending for three days, never emailed; one of an hour ago.
  for (
    const r of [
      request("old", { created: new Date(T0 - 72 * HOUR) }),
      request("recent", { created: new Date(T0 - HOUR) }),
    ]
  ) {
    teleport.requests.set(r.id, r);
  }
  const a = instance(teleport, clock, sent, {
    deps: { reminders: { afterMs: 30 * MINUTE, everyMs: HOUR, max: 3 } },
  });
  for (const task of await a.app.reconcile(signal())) await task.run(signal());
  await a.activity.idle();
  assert.deepEqual(lines(sent), [
    `${OPS} You have a new Role Request:`,
    `${BOB} You have a new Role Request:`,
  ]);
  assert.equal(teleport.data.get("old"), undefined);
  await moveTo(clock, T0 + MINUTE, [a]);
  await moveTo(clock, T0 + 2 * HOUR, [a]);
  assert.equal(teleport.data.get("old"), undefined, "never recorded, never emailed");
  assert.ok(sent.every((e) => !e.subject.includes("old")), sent.map((e) => e.subject).join("\n"));
  a.close();
});

Deno.test("due checks: a request past the catch-up window that has a record keeps its timed work, even once the memory of seen ids forgot it", async () => {
  const out: Record<string, string[]> = {};
  for (const forgotten of [false, true]) {
    const { teleport, clock, sent, a } = setup();
    await put(a, teleport, request("r1")); // emailed at T0: it has a record
    if (forgotten) {
      // The records of 10,000 other requests (a big cluster): the reconcile remembers them all.
      const record = teleport.data.get("r1")!;
      for (let i = 0; i < 10_000; i++) teleport.data.set(`other-${i}`, record);
      await a.app.reconcile(signal());
    }
    const before = sent.length;
    await moveTo(clock, T0 + 25 * HOUR, [a]);
    out[forgotten ? "forgotten" : "remembered"] = lines(sent, before);
    a.close();
  }
  assert.deepEqual(out["remembered"], [`${CTO} ${ESCALATED}`]);
  assert.deepEqual(out["forgotten"], out["remembered"]);
});

Deno.test("due checks: before any reconcile of a new start, a request past the catch-up window is still read, and its timed work sent", async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("r1"));
  await moveTo(clock, T0 + 5 * HOUR, [a]);
  a.close();
  // A new start whose reconcile has not run yet (still retrying, say) when its due check does.
  const b = instance(teleport, clock, sent, { owner: "b" });
  const before = sent.length;
  await moveTo(clock, T0 + 25 * HOUR, [b]);
  assert.deepEqual(lines(sent, before), [`${CTO} ${ESCALATED}`]);
  b.close();
});

Deno.test("reconcile: a request it admitted is emailed even when its task runs after the request left the catch-up window", async () => {
  const teleport = new FakeTeleportClient();
  const clock = new FakeClock(T0);
  const sent: Sent[] = [];
  const r = request("edge", { created: new Date(T0 - 24 * HOUR + 30_000) });
  teleport.requests.set(r.id, r);
  const a = instance(teleport, clock, sent);
  const tasks = await a.app.reconcile(signal());
  assert.equal(tasks.length, 1, "admitted by the reconcile");
  await clock.skip(31_000); // the queue was busy for half a minute
  for (const task of tasks) await task.run(signal());
  await a.activity.idle();
  assert.deepEqual(lines(sent).slice(0, 2), [
    `${OPS} You have a new Role Request:`,
    `${BOB} You have a new Role Request:`,
  ]);
  a.close();
});

// ---------------------------------------------------------------------------
// Access ending soon

/** A request approved at T0 whose access ends 48 h later. */
function approved(id: string, patch: Partial<AccessRequest> = {}): AccessRequest {
  return request(id, {
    state: "APPROVED",
    resolveReason: "ok",
    reviews: [review(BOB)],
    accessExpires: new Date(T0 + 48 * HOUR),
    ...patch,
  });
}

Deno.test("access expiry: each warning at its time, the second in the first one's thread", async () => {
  const { teleport, clock, sent, kinds, a } = setup();
  await put(a, teleport, request("r1"));
  await put(a, teleport, approved("r1"));
  const start = sent.length;
  await moveTo(clock, T0 + 24 * HOUR - MINUTE, [a]);
  assert.equal(sent.length, start, "not before warn_before");

  await moveTo(clock, T0 + 24 * HOUR, [a]);
  assert.deepEqual(lines(sent, start), [`${ALICE} ${ENDS_SOON}`]);
  const first = sent.at(-1)!;
  assert.equal(first.inReplyTo, undefined, "a new thread (notify_requester is off)");
  assert.equal(first.subject, "teleport.example.com Role Request r1");
  assert.match(first.text, /^Access until: 2026-11-25 00:00 UTC$/m);
  assert.match(first.text, /^Access ends in: 1d \(2026-11-25 00:00 UTC\)$/m);
  assert.match(first.text, /^To request it again: tsh request create --roles editor$/m);
  assert.doesNotMatch(first.text, /tsh request review/);
  const data = teleport.data.get("r1")!;
  assert.equal(data.email_expiry_warned, String(24 * HOUR));
  assert.ok(data.email_expiry_thread?.endsWith(`/${first.messageId}`));
  assert.ok(kinds.includes("access_expiry"), "counted by kind");

  await moveTo(clock, T0 + 30 * HOUR, [a]);
  assert.equal(sent.length, start + 1, "never twice for the same warning");
  await moveTo(clock, T0 + 47 * HOUR, [a]);
  assert.deepEqual(lines(sent, start + 1), [`${ALICE} ${ENDS_SOON}`]);
  assert.equal(sent.at(-1)!.inReplyTo, first.messageId);
  assert.match(sent.at(-1)!.text, /^Access ends in: 1h /m);
  assert.equal(teleport.data.get("r1")!.email_expiry_warned, String(HOUR));
  await moveTo(clock, T0 + 60 * HOUR, [a]);
  assert.equal(sent.length, start + 2, "none once access ended");
  a.close();
});

Deno.test("access expiry: in the requester's thread when delivery.notify_requester is on", async () => {
  const { teleport, clock, sent, a } = setup({ notifyRequester: true });
  await put(a, teleport, request("r1"));
  const root = sent.find((e) => e.to === ALICE)!.messageId;
  await put(a, teleport, approved("r1"));
  await moveTo(clock, T0 + 47 * HOUR, [a]);
  const warnings = sent.filter((e) => e.text.startsWith(ENDS_SOON));
  assert.deepEqual(warnings.map((e) => [e.to, e.inReplyTo]), [[ALICE, root]]);
  assert.equal(teleport.data.get("r1")!.email_expiry_thread, undefined);
  a.close();
});

Deno.test("access expiry: after downtime one warning (the latest); none when access already ended", async () => {
  const { teleport, clock, sent, a } = setup();
  await put(a, teleport, request("late"));
  await put(a, teleport, approved("late"));
  await put(a, teleport, request("over"));
  await put(a, teleport, approved("over", { accessExpires: new Date(T0 + 30 * HOUR) }));
  const start = sent.length;
  await moveTo(clock, T0 + 47.5 * HOUR, [a]);
  assert.deepEqual(lines(sent, start), [`${ALICE} ${ENDS_SOON}`]);
  assert.equal(sent.at(-1)!.subject.split(" ").at(-1), "late");
  assert.match(sent.at(-1)!.text, /^Access ends in: 30m /m);
  assert.equal(teleport.data.get("late")!.email_expiry_warned, String(HOUR));
  assert.equal(teleport.data.get("over")!.email_expiry_warned, undefined);
  a.close();
});

Deno.test("access expiry: not for pending or denied requests, nor a requester who is not an address", async () => {
  const { teleport, clock, sent, a } = setup();
  const ends = { accessExpires: new Date(T0 + 2 * HOUR) };
  await put(a, teleport, request("pending", ends));
  await put(a, teleport, request("denied", ends));
  await put(a, teleport, request("denied", { ...ends, state: "DENIED", resolveReason: "no" }));
  await put(a, teleport, request("bob", { ...ends, user: "bob" }));
  await put(a, teleport, approved("bob", { ...ends, user: "bob" }));
  const start = sent.length;
  await moveTo(clock, T0 + 1.5 * HOUR, [a]);
  assert.deepEqual(sent.slice(start).filter((e) => e.text.startsWith(ENDS_SOON)), []);
  a.close();
});

Deno.test("access expiry: a restart never repeats a warning; two replicas send it once", async () => {
  const { teleport, clock, sent, a } = setup();
  const b = instance(teleport, clock, sent, { owner: "b" });
  const reqs = Array.from({ length: 5 }, (_, i) => `w-${i}`);
  for (const id of reqs) {
    await put(a, teleport, request(id));
    await put(a, teleport, approved(id));
  }
  await moveTo(clock, T0 + 24 * HOUR, [a, b]);
  const warned = () => sent.filter((e) => e.text.startsWith(ENDS_SOON)).map((e) => e.subject);
  assert.equal(warned().length, 5);
  assert.equal(new Set(warned()).size, 5, "none twice");
  a.close();
  b.close();

  const c = instance(teleport, clock, sent, { owner: "c" });
  for (const task of await c.app.reconcile(signal())) await task.run(signal());
  await moveTo(clock, T0 + 25 * HOUR, [c]);
  assert.equal(warned().length, 5, "the 24h warnings are on record");
  await moveTo(clock, T0 + 47 * HOUR, [c]);
  assert.equal(warned().length, 10);
  c.close();
});
