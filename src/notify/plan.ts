/**
 * What is left to send for one request, from its latest state and its
 * plugin data. Pure: the app executes the plan and records each step.
 */
import type { AccessRequest, AccessReview } from "../teleport/types.ts";
import { isRecipientAddress } from "../lib/address.ts";
import {
  type EmailPluginData,
  type EmailThread,
  parseThreadTimestamp,
  type ResolutionTag,
} from "./plugin_data.ts";
import { recipientsFor, WILDCARD_ROLE } from "./recipients.ts";
import {
  escalationFailed,
  escalationProgress,
  escalationSentAfter,
  escalationThreads,
  expiryThread,
  expiryWarned,
  failedRecipients,
  plannedRecipients,
  plannedRequester,
  remindersSent,
  requesterProgress,
  requesterThread,
  threadProgress,
} from "./progress.ts";

/** The request as last seen, or only its id when it was deleted (expired). */
export type Target =
  | { readonly kind: "request"; readonly request: AccessRequest }
  | { readonly kind: "deleted"; readonly requestId: string };

export function targetId(target: Target): string {
  return target.kind === "request" ? target.request.id : target.requestId;
}

/** How the request ended, when it has. */
export function resolutionOf(target: Target): { tag: ResolutionTag; reason: string } | undefined {
  if (target.kind === "deleted") return { tag: "EXPIRED", reason: "" };
  const { state, resolveReason } = target.request;
  if (state === "APPROVED" || state === "DENIED" || state === "PROMOTED") {
    return { tag: state, reason: resolveReason };
  }
  return undefined;
}

export type Reply =
  | { readonly kind: "review"; readonly index: number; readonly review: AccessReview }
  | { readonly kind: "resolution" };

export interface Plan {
  /** Recipients still owed a "new request" email (their thread's root). */
  readonly newThreads: readonly string[];
  /** Per existing thread, the replies it still needs, in order. */
  readonly replies: readonly { readonly thread: EmailThread; readonly items: readonly Reply[] }[];
  /** The request is resolved but has no thread to tell: just record the resolution. */
  readonly markResolved: boolean;
  /** The requester is owed the email that opens their own thread. */
  readonly requesterNew?: string;
  /** Replies the requester's thread still needs, in order. */
  readonly requesterReplies?: { readonly thread: EmailThread; readonly items: readonly Reply[] };
  /** Reviewer threads owed a reminder now, with the count each will have sent. */
  readonly reminders?: readonly { readonly thread: EmailThread; readonly count: number }[];
  /**
   * An escalation level that is due: the recipients still owed the email
   * that opens their escalation thread (possibly none), and the level to
   * record once they all got it.
   */
  readonly escalation?: {
    readonly level: number;
    /** The level's `after`: what its record keeps. */
    readonly afterMs: number;
    readonly newThreads: readonly string[];
  };
  /** Per escalation thread, the replies it still needs, in order. */
  readonly escalationReplies?: readonly {
    readonly thread: EmailThread;
    readonly items: readonly Reply[];
  }[];
  /** A warning that granted access ends soon, owed to the requester now. */
  readonly expiryWarning?: ExpiryWarning;
}

/** The warning `warnBeforeMs` before granted access ends. */
export interface ExpiryWarning {
  readonly warnBeforeMs: number;
  /** When access ends (ms since the epoch). */
  readonly accessExpires: number;
  readonly to: string;
  /** The thread to reply in (the requester's, or the earlier warnings'); none: a new one. */
  readonly thread?: EmailThread;
  /** Whether `thread` is the requester's own thread (else the warnings' own). */
  readonly inRequesterThread: boolean;
}

/** One level of `[escalation]`. */
export interface EscalationLevel {
  /** Since the request was created. */
  readonly afterMs: number;
  /** The `"*"` list: for requested roles without a list of their own. */
  readonly recipients: readonly string[];
  /** Role name → addresses, as `role_to_recipients`. */
  readonly roleToRecipients: Readonly<Record<string, readonly string[]>>;
}

/** `[escalation]`: levels in ascending `afterMs`. */
export interface EscalationPolicy {
  readonly levels: readonly EscalationLevel[];
}

/** `[access_expiry]`: how long before granted access ends the requester is warned. */
export interface AccessExpiryPolicy {
  readonly warnBeforeMs: readonly number[];
}

/** `[reminders]`: remind reviewers of a pending request nobody reviewed. */
export interface ReminderPolicy {
  readonly afterMs: number;
  readonly everyMs: number;
  readonly max: number;
}

export interface PlanOptions {
  /** Milliseconds since the epoch (reminders). */
  readonly now?: number;
  readonly reminders?: ReminderPolicy | undefined;
  readonly escalation?: EscalationPolicy | undefined;
  readonly accessExpiry?: AccessExpiryPolicy | undefined;
}

export function isEmptyPlan(plan: Plan): boolean {
  return plan.newThreads.length === 0 && plan.replies.length === 0 && !plan.markResolved &&
    plan.requesterNew === undefined && plan.requesterReplies === undefined &&
    (plan.reminders?.length ?? 0) === 0 && plan.escalation === undefined &&
    (plan.escalationReplies?.length ?? 0) === 0 && plan.expiryWarning === undefined;
}

/** When reminder number `count + 1` is due for a request created at `created`. */
export function reminderDueAt(created: Date, count: number, policy: ReminderPolicy): number {
  return created.getTime() + policy.afterMs + count * policy.everyMs;
}

/**
 * The number of the latest reminder whose time has come at `now` (1 at
 * `created + after`, 2 at `+ every`, …, at most `max`); 0 before the first.
 */
export function reminderSlotAt(created: Date, now: number, policy: ReminderPolicy): number {
  const late = now - created.getTime() - policy.afterMs;
  if (late < 0) return 0;
  if (!(policy.everyMs > 0)) return Math.min(1, policy.max);
  return Math.min(policy.max, Math.floor(late / policy.everyMs) + 1);
}

/**
 * The work for `target` given its stored record (`undefined` = none yet;
 * the caller creates it for a pending request first).
 */
export function planWork(
  target: Target,
  data: EmailPluginData | undefined,
  options: PlanOptions = {},
): Plan {
  const empty: Plan = { newThreads: [], replies: [], markResolved: false };
  if (data === undefined) return empty;
  const resolution = resolutionOf(target);
  const reviews = target.kind === "request" ? target.request.reviews : [];
  const requester = planRequester(target, data, reviews, resolution);
  const followUps = planFollowUps(target, data, reviews, resolution, options);
  if (data.resolution !== "") return { ...empty, ...requester, ...followUps };

  // New threads only while the request is pending: once it is resolved a
  // reviewer has nothing left to do.
  let newThreads: string[] = [];
  if (target.kind === "request" && target.request.state === "PENDING") {
    const done = new Set([...data.emailThreads.map((t) => t.email), ...failedRecipients(data)]);
    newThreads = plannedRecipients(data).filter((r) => !done.has(r));
  }

  const replies = repliesOwed(data.emailThreads, threadProgress(data), reviews, resolution);
  const markResolved = resolution !== undefined && data.emailThreads.length === 0;
  const reminders = planReminders(target, data, options);
  return {
    newThreads,
    replies,
    markResolved,
    ...requester,
    ...(reminders.length > 0 ? { reminders } : {}),
    ...followUps,
  };
}

/** The requester's own thread: opened while pending, then the same replies as reviewers get. */
function planRequester(
  target: Target,
  data: EmailPluginData,
  reviews: readonly AccessReview[],
  resolution: ReturnType<typeof resolutionOf>,
): Pick<Plan, "requesterNew" | "requesterReplies"> {
  const address = plannedRequester(data);
  if (address === undefined) return {};
  const thread = requesterThread(data);
  if (thread === undefined) {
    const pending = target.kind === "request" && target.request.state === "PENDING";
    return pending && !failedRecipients(data).includes(address) ? { requesterNew: address } : {};
  }
  const p = requesterProgress(data);
  if (p.resolved) return {};
  const items: Reply[] = [];
  for (let index = p.reviews; index < reviews.length; index++) {
    items.push({ kind: "review", index, review: reviews[index]! });
  }
  if (resolution) items.push({ kind: "resolution" });
  return items.length > 0 ? { requesterReplies: { thread, items } } : {};
}

/**
 * Reviewer threads due a reminder: pending, nobody reviewed, the time of a
 * reminder not sent yet has come. `count` is that reminder's number: after
 * a pause (the plugin was down) one reminder is sent for the latest slot,
 * never a burst for the ones missed.
 */
function planReminders(
  target: Target,
  data: EmailPluginData,
  options: PlanOptions,
): { thread: EmailThread; count: number }[] {
  const policy = options.reminders;
  if (policy === undefined || options.now === undefined || target.kind !== "request") return [];
  const { request } = target;
  if (request.state !== "PENDING" || request.reviews.length > 0 || !request.created) return [];
  const sent = remindersSent(data);
  const due: { thread: EmailThread; count: number }[] = [];
  const slot = reminderSlotAt(request.created, options.now, policy);
  for (const thread of data.emailThreads) {
    // The slots that had come before the thread was opened (a request first emailed late, after
    // downtime) would remind of an email not yet read: the first reminder is the next slot.
    const opened = parseThreadTimestamp(thread.timestamp)?.getTime();
    const before = opened === undefined ? 0 : reminderSlotAt(request.created, opened, policy);
    if (slot > Math.max(sent.get(thread.email) ?? 0, before)) due.push({ thread, count: slot });
  }
  return due;
}

/** Escalation and access-expiry work: independent of the Go plugin's aggregate keys. */
function planFollowUps(
  target: Target,
  data: EmailPluginData,
  reviews: readonly AccessReview[],
  resolution: ReturnType<typeof resolutionOf>,
  options: PlanOptions,
): Pick<Plan, "escalation" | "escalationReplies" | "expiryWarning"> {
  const escalation = planEscalation(target, data, options);
  const escalationReplies = repliesOwed(
    escalationThreads(data),
    escalationProgress(data),
    reviews,
    resolution,
  );
  const expiryWarning = planExpiryWarning(target, data, options);
  return {
    ...(escalation ? { escalation } : {}),
    ...(escalationReplies.length > 0 ? { escalationReplies } : {}),
    ...(expiryWarning ? { expiryWarning } : {}),
  };
}

/**
 * The latest escalation level whose time has come at `now` (1 = the first
 * level); 0 before the first.
 */
export function escalationLevelAt(created: Date, now: number, policy: EscalationPolicy): number {
  let level = 0;
  policy.levels.forEach((l, index) => {
    if (now >= created.getTime() + l.afterMs) level = index + 1;
  });
  return level;
}

/** A level's recipients for `request`: per requested role its list, else the `"*"` list. */
export function escalationRecipients(
  request: Pick<AccessRequest, "roles">,
  level: EscalationLevel,
): string[] {
  const map = { ...level.roleToRecipients, [WILDCARD_ROLE]: level.recipients };
  return recipientsFor({ roles: request.roles, suggestedReviewers: [] }, map).recipients;
}

/**
 * The escalation that is due: pending, nobody reviewed, the time of a level
 * not sent yet has come. After a pause only the latest due level is sent.
 * A recipient with an escalation thread already is not emailed again.
 */
function planEscalation(
  target: Target,
  data: EmailPluginData,
  options: PlanOptions,
): Plan["escalation"] {
  const policy = options.escalation;
  if (policy === undefined || options.now === undefined || target.kind !== "request") return;
  const { request } = target;
  // Resolved on record: a copy of the request still pending is an old one (a listing).
  if (data.resolution !== "") return;
  if (request.state !== "PENDING" || request.reviews.length > 0 || !request.created) return;
  const level = escalationLevelAt(request.created, options.now, policy);
  if (level === 0) return;
  const { afterMs } = policy.levels[level - 1]!;
  if (afterMs <= escalationSentAfter(data, policy.levels, request.created)) return;
  const done = new Set(
    [...escalationThreads(data).map((t) => t.email), ...escalationFailed(data)]
      .map((e) => e.toLowerCase()),
  );
  const newThreads = escalationRecipients(request, policy.levels[level - 1]!)
    .filter((r) => !done.has(r.toLowerCase()));
  return { level, afterMs, newThreads };
}

/**
 * The warning due before granted access ends: approved, the requester is a
 * plain address, access has not ended, and the time of a warning shorter
 * than every one sent so far has come (after a pause: only the latest).
 */
function planExpiryWarning(
  target: Target,
  data: EmailPluginData,
  options: PlanOptions,
): ExpiryWarning | undefined {
  const policy = options.accessExpiry;
  const now = options.now;
  if (policy === undefined || now === undefined || target.kind !== "request") return;
  const { request } = target;
  if (request.state !== "APPROVED" || request.accessExpires === undefined) return;
  if (!isRecipientAddress(request.user)) return;
  const ends = request.accessExpires.getTime();
  if (now >= ends) return;
  const due = policy.warnBeforeMs.filter((w) => now >= ends - w);
  if (due.length === 0) return;
  const warnBeforeMs = Math.min(...due);
  const warned = expiryWarned(data);
  if (warned !== undefined && warned <= warnBeforeMs) return;
  const own = requesterThread(data);
  const thread = own ?? expiryThread(data);
  return {
    warnBeforeMs,
    accessExpires: ends,
    to: request.user,
    ...(thread ? { thread } : {}),
    inRequesterThread: own !== undefined,
  };
}

/**
 * The replies each thread still owes: the reviews after those it already
 * got, then the resolution (once the request has one); threads owed nothing
 * are left out.
 */
function repliesOwed(
  threads: readonly EmailThread[],
  progress: ReadonlyMap<string, { reviews: number; resolved: boolean }>,
  reviews: readonly AccessReview[],
  resolution: ReturnType<typeof resolutionOf>,
): { thread: EmailThread; items: Reply[] }[] {
  const owed: { thread: EmailThread; items: Reply[] }[] = [];
  for (const thread of threads) {
    const p = progress.get(thread.email) ?? { reviews: 0, resolved: false };
    if (p.resolved) continue;
    const items: Reply[] = [];
    for (let index = p.reviews; index < reviews.length; index++) {
      items.push({ kind: "review", index, review: reviews[index]! });
    }
    if (resolution) items.push({ kind: "resolution" });
    if (items.length > 0) owed.push({ thread, items });
  }
  return owed;
}
