/**
 * What is left to send, read like the issue: the requester's own thread
 * (opened while pending, then every review and the resolution) and the
 * reminders (at created + after, then every `every`, at most `max`, never
 * once someone reviewed or the request left PENDING).
 */
import assert from "node:assert/strict";
import {
  isEmptyPlan,
  type Plan,
  planWork,
  reminderDueAt,
  type ReminderPolicy,
  reminderSlotAt,
  type Target,
} from "./plan.ts";
import {
  type EmailPluginData,
  type EmailThread,
  EMPTY_PLUGIN_DATA,
  formatThreadTimestamp,
} from "./plugin_data.ts";
import {
  addEscalationThread,
  addFailed,
  addThread,
  markResolved,
  recordEscalationLevel,
  recordReminder,
  recordReplies,
  recordRequesterReplies,
  setPlannedRecipients,
  setPlannedRequester,
  setRequesterThread,
} from "./progress.ts";
import type { AccessRequest, AccessReview, RequestState } from "../teleport/types.ts";
import { newAccessRequest } from "../../tests/requests.ts";

const HOUR = 3_600_000;
const CREATED = new Date("2026-03-02T09:00:00Z");
const T0 = CREATED.getTime();
const POLICY: ReminderPolicy = { afterMs: 1 * HOUR, everyMs: 4 * HOUR, max: 3 };

const ALICE = "alice@example.com";
const OPS = "ops@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";

function review(author: string, proposedState: "APPROVED" | "DENIED" = "APPROVED"): AccessReview {
  return { author, roles: [], proposedState, reason: "", created: new Date(T0 + 60_000) };
}

function request(state: RequestState, patch: Partial<AccessRequest> = {}): Target {
  return {
    kind: "request",
    request: newAccessRequest("req-1", {
      user: ALICE,
      state,
      created: CREATED,
      resolveReason: state === "PENDING" ? "" : "because",
      ...patch,
    }),
  };
}

const DELETED: Target = { kind: "deleted", requestId: "req-1" };

/** `target` without a creation time (old servers). */
function undated(target: Target): Target {
  if (target.kind !== "request") return target;
  const { created: _created, ...rest } = target.request;
  return { kind: "request", request: rest };
}

function thread(email: string): EmailThread {
  return { email, timestamp: "2026-03-02 09:00:01 +0000 UTC", messageId: `root-${email}` };
}

/** A record as the app writes it: reviewer threads for `reviewers`, maybe the requester's. */
function record(o: {
  reviewers?: string[];
  requester?: "planned" | "opened" | "failed";
  requesterReplies?: { reviews: number; resolved: boolean };
  reminders?: Record<string, number>;
} = {}): EmailPluginData {
  const reviewers = o.reviewers ?? [OPS];
  let data = setPlannedRecipients({ ...EMPTY_PLUGIN_DATA, user: ALICE }, reviewers);
  for (const r of reviewers) data = addThread(data, thread(r));
  if (o.requester) data = setPlannedRequester(data, ALICE);
  if (o.requester === "opened") data = setRequesterThread(data, thread(ALICE));
  if (o.requester === "failed") data = addFailed(data, ALICE);
  if (o.requesterReplies) data = recordRequesterReplies(data, o.requesterReplies);
  for (const [email, n] of Object.entries(o.reminders ?? {})) {
    data = recordReminder(data, email, n);
  }
  return data;
}

/** What the requester is owed, in words: "new" or the reply kinds ("review 0", "resolution"). */
function requesterOwed(plan: Plan): string[] {
  const out: string[] = [];
  if (plan.requesterNew !== undefined) out.push(`new ${plan.requesterNew}`);
  for (const item of plan.requesterReplies?.items ?? []) {
    out.push(item.kind === "review" ? `review ${item.index}` : "resolution");
  }
  return out;
}

/** Reminders owed, as `<email>#<number>`. */
function remindersOwed(plan: Plan): string[] {
  return (plan.reminders ?? []).map((r) => `${r.thread.email}#${r.count}`);
}

Deno.test("requester thread: opened only while pending, and only when planned", () => {
  const cases: [string, Target, EmailPluginData, string[]][] = [
    ["pending, planned", request("PENDING"), record({ requester: "planned" }), [`new ${ALICE}`]],
    ["pending, not planned", request("PENDING"), record(), []],
    ["pending, refused for good", request("PENDING"), record({ requester: "failed" }), []],
    ["approved before it was opened", request("APPROVED"), record({ requester: "planned" }), []],
    ["denied before it was opened", request("DENIED"), record({ requester: "planned" }), []],
    ["deleted before it was opened", DELETED, record({ requester: "planned" }), []],
    ["already opened", request("PENDING"), record({ requester: "opened" }), []],
  ];
  for (const [what, target, data, want] of cases) {
    assert.deepEqual(requesterOwed(planWork(target, data)), want, what);
  }
  // The requester's thread is not one of the reviewer threads.
  const plan = planWork(request("PENDING"), record({ requester: "planned" }));
  assert.deepEqual(plan.newThreads, []);
  assert.equal(plan.requesterNew, ALICE);
  assert.equal(planWork(request("PENDING"), undefined).requesterNew, undefined, "no record yet");
});

Deno.test("requester thread: each review, then the resolution, each once", () => {
  const two = [review(BOB), review("carol@example.com", "DENIED")];
  const cases: [string, Target, EmailPluginData, string[]][] = [
    ["nothing new", request("PENDING"), record({ requester: "opened" }), []],
    [
      "two reviews",
      request("PENDING", { reviews: two }),
      record({ requester: "opened" }),
      ["review 0", "review 1"],
    ],
    [
      "second review only",
      request("PENDING", { reviews: two }),
      record({ requester: "opened", requesterReplies: { reviews: 1, resolved: false } }),
      ["review 1"],
    ],
    [
      "approved with a review in the same change",
      request("APPROVED", { reviews: [review(BOB)] }),
      record({ requester: "opened" }),
      ["review 0", "resolution"],
    ],
    [
      "approved, review already sent",
      request("APPROVED", { reviews: [review(BOB)] }),
      record({ requester: "opened", requesterReplies: { reviews: 1, resolved: false } }),
      ["resolution"],
    ],
    [
      "resolution already sent",
      request("APPROVED", { reviews: [review(BOB)] }),
      record({ requester: "opened", requesterReplies: { reviews: 1, resolved: true } }),
      [],
    ],
    ["promoted", request("PROMOTED"), record({ requester: "opened" }), ["resolution"]],
    ["deleted (expired)", DELETED, record({ requester: "opened" }), ["resolution"]],
  ];
  for (const [what, target, data, want] of cases) {
    const plan = planWork(target, data);
    assert.deepEqual(requesterOwed(plan), want, what);
    if (want.length > 0) {
      assert.equal(plan.requesterReplies?.thread.email, ALICE, what);
      assert.equal(plan.requesterReplies?.thread.messageId, `root-${ALICE}`, what);
      assert.ok(!isEmptyPlan(plan), what);
    }
  }
});

Deno.test("requester thread: still owed after every reviewer thread was resolved", () => {
  const resolved = { tag: "APPROVED" as const, reason: "because" };
  const target = request("APPROVED", { reviews: [review(BOB)] });
  let data = record({ requester: "opened" });
  data = recordReplies(data, OPS, { reviews: 1, resolved: true }, resolved);
  assert.equal(data.resolution, "APPROVED", "the reviewer side is done");
  const plan = planWork(target, data);
  assert.deepEqual(plan.replies, [], "nothing more for reviewers");
  assert.deepEqual(requesterOwed(plan), ["review 0", "resolution"]);
  assert.ok(!isEmptyPlan(plan));

  // A record resolved with no thread at all still opens nothing for the requester.
  const bare = markResolved(record({ reviewers: [], requester: "planned" }), resolved);
  assert.deepEqual(requesterOwed(planWork(target, bare)), []);
});

Deno.test("deleted request: EXPIRED resolution in every open thread", () => {
  const plan = planWork(DELETED, record({ reviewers: [OPS, BOB], requester: "opened" }));
  assert.deepEqual(plan.newThreads, []);
  assert.deepEqual(
    plan.replies.map((r) => [r.thread.email, r.items.map((i) => i.kind)]),
    [[OPS, ["resolution"]], [BOB, ["resolution"]]],
  );
  assert.deepEqual(requesterOwed(plan), ["resolution"]);
  assert.equal(plan.reminders, undefined, "no reminder for a deleted request");
});

Deno.test("reminders: the schedule is created + after, then every `every`, at most `max`", () => {
  assert.equal(reminderDueAt(CREATED, 0, POLICY), T0 + 1 * HOUR);
  assert.equal(reminderDueAt(CREATED, 1, POLICY), T0 + 5 * HOUR);
  assert.equal(reminderDueAt(CREATED, 2, POLICY), T0 + 9 * HOUR);
  const slots: [number, number][] = [
    [T0, 0],
    [T0 + 1 * HOUR - 1, 0],
    [T0 + 1 * HOUR, 1],
    [T0 + 5 * HOUR - 1, 1],
    [T0 + 5 * HOUR, 2],
    [T0 + 9 * HOUR, 3],
    [T0 + 13 * HOUR, 3],
    [T0 + 1000 * HOUR, 3],
  ];
  for (const [now, want] of slots) {
    assert.equal(reminderSlotAt(CREATED, now, POLICY), want, `at T0+${(now - T0) / HOUR}h`);
  }
});

Deno.test("reminders: due at created + after, then every `every`, at most `max`", () => {
  const pending = request("PENDING");
  // [what, now, reminders already sent, owed]
  const cases: [string, number, Record<string, number>, string[]][] = [
    ["just created", T0, {}, []],
    ["a moment before `after`", T0 + 1 * HOUR - 1, {}, []],
    ["`after` has come", T0 + 1 * HOUR, {}, [`${OPS}#1`, `${BOB}#1`]],
    ["first sent, `every` not yet", T0 + 5 * HOUR - 1, { [OPS]: 1, [BOB]: 1 }, []],
    ["`every` has come", T0 + 5 * HOUR, { [OPS]: 1, [BOB]: 1 }, [`${OPS}#2`, `${BOB}#2`]],
    ["third", T0 + 9 * HOUR, { [OPS]: 2, [BOB]: 2 }, [`${OPS}#3`, `${BOB}#3`]],
    ["`max` sent", T0 + 13 * HOUR, { [OPS]: 3, [BOB]: 3 }, []],
    ["long after `max`", T0 + 100 * HOUR, { [OPS]: 3, [BOB]: 3 }, []],
    ["one thread behind the other", T0 + 5 * HOUR, { [OPS]: 2, [BOB]: 1 }, [`${BOB}#2`]],
    // After a pause the latest reminder is sent once, not the missed ones in a row.
    ["plugin was down past two slots", T0 + 9 * HOUR + 1, { [OPS]: 1, [BOB]: 1 }, [
      `${OPS}#3`,
      `${BOB}#3`,
    ]],
  ];
  for (const [what, now, sent, want] of cases) {
    const plan = planWork(pending, record({ reviewers: [OPS, BOB], reminders: sent }), {
      now,
      reminders: POLICY,
    });
    assert.deepEqual(remindersOwed(plan), want, what);
    assert.equal(isEmptyPlan(plan), want.length === 0, what);
    for (const r of plan.reminders ?? []) {
      assert.equal(r.thread.messageId, `root-${r.thread.email}`, `${what}: replies on the root`);
    }
  }
});

Deno.test("reminders: a thread opened late (the plugin was down) is first reminded at the next slot", () => {
  const pending = request("PENDING");
  const openedAt = (hours: number) =>
    addThread(setPlannedRecipients({ ...EMPTY_PLUGIN_DATA, user: ALICE }, [OPS]), {
      email: OPS,
      timestamp: formatThreadTimestamp(new Date(T0 + hours * HOUR)),
      messageId: `root-${OPS}`,
    });
  // [what, opened (h after creation), now (h), owed]
  const cases: [string, number, number, string[]][] = [
    ["opened past `after`, at once", 2, 2, []],
    ["opened past `after`, before the next slot", 2, 5 - 1 / 60, []],
    ["opened past `after`, the next slot", 2, 5, [`${OPS}#2`]],
    ["opened past two slots", 6, 8, []],
    ["opened past two slots, the last slot", 6, 9, [`${OPS}#3`]],
    ["opened past every slot", 10, 30, []],
    ["opened before `after` (control)", 0.5, 1, [`${OPS}#1`]],
  ];
  for (const [what, opened, now, want] of cases) {
    const plan = planWork(pending, openedAt(opened), { now: T0 + now * HOUR, reminders: POLICY });
    assert.deepEqual(remindersOwed(plan), want, what);
  }
});

Deno.test("reminders: none after a review, when resolved, when not pending, or when off", () => {
  const late = T0 + 6 * HOUR;
  const on = { now: late, reminders: POLICY };
  const data = record({ reviewers: [OPS] });
  const cases: [string, Target, EmailPluginData, Parameters<typeof planWork>[2]][] = [
    ["pending, nobody reviewed (control)", request("PENDING"), data, on],
    ["reviewed (threshold not met)", request("PENDING", { reviews: [review(BOB)] }), data, on],
    ["approved", request("APPROVED"), data, on],
    ["denied", request("DENIED"), data, on],
    ["promoted", request("PROMOTED"), data, on],
    ["deleted", DELETED, data, on],
    [
      "record already resolved",
      request("PENDING"),
      markResolved(data, { tag: "EXPIRED", reason: "" }),
      on,
    ],
    ["no creation time", undated(request("PENDING")), data, on],
    ["no policy", request("PENDING"), data, { now: late }],
    ["no clock", request("PENDING"), data, { reminders: POLICY }],
    ["no reviewer thread", request("PENDING"), record({ reviewers: [] }), on],
  ];
  for (const [what, target, d, options] of cases) {
    const owed = remindersOwed(planWork(target, d, options));
    assert.deepEqual(owed, what.endsWith("(control)") ? [`${OPS}#2`] : [], what);
  }
});

Deno.test("reminders never go to the requester's thread", () => {
  const plan = planWork(
    request("PENDING"),
    record({ reviewers: [OPS], requester: "opened" }),
    { now: T0 + 2 * HOUR, reminders: POLICY },
  );
  assert.deepEqual(remindersOwed(plan), [`${OPS}#1`]);
  assert.deepEqual(requesterOwed(plan), []);
});

Deno.test("escalation: a record that has only the level's position (an earlier version) is read through the levels", () => {
  const levels = [
    { afterMs: 4 * HOUR, recipients: [BOB], roleToRecipients: {} },
    { afterMs: 24 * HOUR, recipients: [CAROL], roleToRecipients: {} },
  ];
  const opened = addThread(setPlannedRecipients(EMPTY_PLUGIN_DATA, [OPS]), thread(OPS));
  const legacy = (level: string) => ({
    ...opened,
    extra: { ...opened.extra, email_escalation_level: level },
  });
  const due = (data: EmailPluginData, hours: number) =>
    planWork(request("PENDING"), data, { now: T0 + hours * HOUR, escalation: { levels } })
      .escalation?.level;
  assert.equal(due(legacy("1"), 5), undefined, "level 1 sent");
  assert.equal(due(legacy("1"), 25), 2);
  assert.equal(due(legacy("2"), 25), undefined);
  assert.equal(due(legacy("9"), 25), undefined, "past the last level: all sent");
  // With its escalation thread, the time it was opened tells, whatever the levels are now: "1"
  // sent 5 h after creation (the 4 h level of a config since changed to the 24 h level alone).
  const escalated = addEscalationThread(legacy("1"), {
    email: BOB,
    timestamp: formatThreadTimestamp(new Date(T0 + 5 * HOUR)),
    messageId: "esc-1",
  });
  const laterOnly = { levels: [levels[1]!] };
  const dueWith = (data: EmailPluginData, policy: typeof laterOnly, hours: number) =>
    planWork(request("PENDING"), data, { now: T0 + hours * HOUR, escalation: policy }).escalation
      ?.level;
  assert.equal(dueWith(legacy("1"), laterOnly, 25), undefined, "by position: silenced");
  assert.equal(dueWith(escalated, laterOnly, 25), 1, "by its thread's time: the 24 h level is due");
  // Written now: by time, and the position for earlier versions.
  const written = recordEscalationLevel(opened, 1, 4 * HOUR);
  assert.equal(written.extra.email_escalation_after, String(4 * HOUR));
  assert.equal(written.extra.email_escalation_level, "1");
  assert.equal(recordEscalationLevel(written, 1, 2 * HOUR), written, "never back");
  // A record of an earlier version, whose new thread was just opened: it gets its time now.
  const upgraded = recordEscalationLevel(escalated, 2, 24 * HOUR);
  assert.equal(upgraded.extra.email_escalation_after, String(24 * HOUR));
  assert.equal(upgraded.extra.email_escalation_level, "2");
});

Deno.test("no escalation for a pending copy of a request resolved on record (an old listing)", () => {
  const escalation = {
    levels: [{ afterMs: 1 * HOUR, recipients: [BOB], roleToRecipients: {} }],
  };
  const options = { now: T0 + 2 * HOUR, escalation };
  const opened = addThread(setPlannedRecipients(EMPTY_PLUGIN_DATA, [OPS]), thread(OPS));
  assert.deepEqual(planWork(request("PENDING"), opened, options).escalation, {
    level: 1,
    afterMs: 1 * HOUR,
    newThreads: [BOB],
  });
  const resolved = markResolved(opened, { tag: "APPROVED", reason: "ok" });
  assert.equal(planWork(request("PENDING"), resolved, options).escalation, undefined);
});
