/**
 * What has been sent for one request, and who is sending: our keys in the
 * plugin data, next to the Go plugin's (whose meaning we keep).
 *
 * - `email_claim` = `<owner>;<expires ms>`: the instance that is sending for
 *   this request right now. Every send happens under a claim taken by
 *   compare-and-swap, so two instances never send the same email; a claim
 *   expires so that a crashed owner does not block the request for ever.
 * - `email_recipients`: the recipients planned when the request was first
 *   seen. A restart creates the threads still missing, and only those.
 * - `email_failed`: planned recipients refused for good (e.g. SMTP 550).
 * - `email_replies`: per thread, `<email>=<reviews sent>` with a trailing `+`
 *   once the resolution was sent, only for threads ahead of the Go plugin's
 *   aggregate keys (`reviews_count`: sent to every thread; `resolution`: the
 *   resolution reply reached every thread).
 * - `email_escalation*`: the escalation threads (`[escalation]`), their
 *   replies, the latest level sent and the recipients refused for good.
 * - `email_expiry*`: the warnings sent before granted access ends
 *   (`[access_expiry]`) and the thread they went into when it is not the
 *   requester's.
 */
import {
  decodeThreadList,
  type EmailPluginData,
  type EmailThread,
  encodeThreadList,
  parseThreadTimestamp,
  type ResolutionTag,
} from "./plugin_data.ts";

export const CLAIM_KEY = "email_claim";
export const RECIPIENTS_KEY = "email_recipients";
export const FAILED_KEY = "email_failed";
export const REPLIES_KEY = "email_replies";
/** The requester's address when they get their own thread (`delivery.notify_requester`). */
export const REQUESTER_KEY = "email_requester";
/** The requester's thread, in the `email_threads` format. */
export const REQUESTER_THREAD_KEY = "email_requester_thread";
/** Replies in the requester's thread: `<reviews sent>`, `+` once the resolution was sent. */
export const REQUESTER_REPLIES_KEY = "email_requester_replies";
/**
 * Reminders per reviewer thread: `<email>=<n>,…`, n = the number of the
 * latest reminder sent (slots missed while the plugin was down are skipped,
 * so n may exceed the reminders actually sent; never more than `max`).
 */
export const REMINDERS_KEY = "email_reminders";
/** Recipients beyond `delivery.max_recipients` who get no email (said in the emails). */
export const OVERFLOW_KEY = "email_not_emailed";

export interface Claim {
  readonly owner: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

/** Replies that reached one thread. */
export interface ThreadProgress {
  readonly reviews: number;
  readonly resolved: boolean;
}

export function readClaim(data: EmailPluginData): Claim | undefined {
  const text = data.extra[CLAIM_KEY];
  if (text === undefined || text === "") return undefined;
  const at = text.lastIndexOf(";");
  const expiresAt = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isFinite(expiresAt)) return undefined; // unreadable: not a claim
  return { owner: text.slice(0, at), expiresAt };
}

/** The owner may send when nobody holds a live claim, or it holds it itself. */
export function claimFree(data: EmailPluginData, owner: string, now: number): boolean {
  const claim = readClaim(data);
  return claim === undefined || claim.owner === owner || claim.expiresAt <= now;
}

function list(data: EmailPluginData, key: string): string[] {
  const text = data.extra[key] ?? "";
  return text === "" ? [] : text.split(",");
}

export function plannedRecipients(data: EmailPluginData): string[] {
  return list(data, RECIPIENTS_KEY);
}

export function failedRecipients(data: EmailPluginData): string[] {
  return list(data, FAILED_KEY);
}

/** Each thread's progress: its own entry, or what the aggregate keys say of every thread. */
export function threadProgress(data: EmailPluginData): Map<string, ThreadProgress> {
  const resolvedAll = data.resolution !== "";
  const own = new Map<string, ThreadProgress>();
  for (const entry of list(data, REPLIES_KEY)) {
    const m = /^(.+)=(\d+)(\+?)$/.exec(entry);
    if (m) own.set(m[1]!, { reviews: Number(m[2]), resolved: m[3] === "+" });
  }
  const out = new Map<string, ThreadProgress>();
  for (const thread of data.emailThreads) {
    const entry = own.get(thread.email);
    out.set(thread.email, {
      reviews: Math.max(entry?.reviews ?? 0, data.reviewsCount),
      resolved: resolvedAll || (entry?.resolved ?? false),
    });
  }
  return out;
}

function withExtra(data: EmailPluginData, key: string, value: string): EmailPluginData {
  const extra = { ...data.extra };
  if (value === "") delete extra[key];
  else extra[key] = value;
  return { ...data, extra };
}

export function setClaim(data: EmailPluginData, claim: Claim | undefined): EmailPluginData {
  return withExtra(data, CLAIM_KEY, claim ? `${claim.owner};${claim.expiresAt}` : "");
}

export function setPlannedRecipients(
  data: EmailPluginData,
  recipients: readonly string[],
): EmailPluginData {
  return withExtra(data, RECIPIENTS_KEY, recipients.join(","));
}

export function addThread(data: EmailPluginData, thread: EmailThread): EmailPluginData {
  if (data.emailThreads.some((t) => t.email === thread.email)) return data;
  return { ...data, emailThreads: [...data.emailThreads, thread] };
}

export function addFailed(data: EmailPluginData, recipient: string): EmailPluginData {
  const failed = failedRecipients(data);
  if (failed.includes(recipient)) return data;
  return withExtra(data, FAILED_KEY, [...failed, recipient].join(","));
}

/**
 * Records that `email`'s thread got replies up to `progress`, then folds
 * what every thread has into the aggregate keys: `reviews_count` = the
 * fewest reviews any thread got; `resolution` once every thread has it.
 */
export function recordReplies(
  data: EmailPluginData,
  email: string,
  progress: ThreadProgress,
  resolution: { tag: ResolutionTag; reason: string },
): EmailPluginData {
  const all = threadProgress(data);
  const current = all.get(email);
  if (current) {
    all.set(email, {
      reviews: Math.max(current.reviews, progress.reviews),
      resolved: current.resolved || progress.resolved,
    });
  }
  return foldProgress(data, all, resolution);
}

/** Writes per-thread progress, moving what all threads share into the aggregate keys. */
export function foldProgress(
  data: EmailPluginData,
  all: Map<string, ThreadProgress>,
  resolution: { tag: ResolutionTag; reason: string },
): EmailPluginData {
  const values = [...all.values()];
  const reviewsCount = values.length === 0
    ? data.reviewsCount
    : Math.min(...values.map((p) => p.reviews));
  const resolvedAll = values.length > 0 && values.every((p) => p.resolved);
  const entries: string[] = [];
  for (const [email, p] of all) {
    if (p.reviews === reviewsCount && (p.resolved === resolvedAll)) continue;
    entries.push(`${email}=${p.reviews}${p.resolved ? "+" : ""}`);
  }
  let next: EmailPluginData = {
    ...data,
    reviewsCount: Math.max(data.reviewsCount, reviewsCount),
  };
  if (resolvedAll && data.resolution === "") {
    next = { ...next, resolution: resolution.tag, resolveReason: resolution.reason };
  }
  return withExtra(next, REPLIES_KEY, entries.join(","));
}

/** Marks the request resolved without replies (no thread to reply in). */
export function markResolved(
  data: EmailPluginData,
  resolution: { tag: ResolutionTag; reason: string },
): EmailPluginData {
  if (data.resolution !== "") return data;
  return { ...data, resolution: resolution.tag, resolveReason: resolution.reason };
}

export function plannedRequester(data: EmailPluginData): string | undefined {
  return data.extra[REQUESTER_KEY] || undefined;
}

export function setPlannedRequester(data: EmailPluginData, email: string): EmailPluginData {
  return withExtra(data, REQUESTER_KEY, email);
}

export function requesterThread(data: EmailPluginData): EmailThread | undefined {
  return decodeThreadList(data.extra[REQUESTER_THREAD_KEY] ?? "")[0];
}

export function setRequesterThread(data: EmailPluginData, thread: EmailThread): EmailPluginData {
  return withExtra(data, REQUESTER_THREAD_KEY, encodeThreadList([thread]));
}

export function requesterProgress(data: EmailPluginData): ThreadProgress {
  const m = /^(\d+)(\+?)$/.exec(data.extra[REQUESTER_REPLIES_KEY] ?? "");
  return m ? { reviews: Number(m[1]), resolved: m[2] === "+" } : { reviews: 0, resolved: false };
}

export function recordRequesterReplies(
  data: EmailPluginData,
  progress: ThreadProgress,
): EmailPluginData {
  const current = requesterProgress(data);
  const reviews = Math.max(current.reviews, progress.reviews);
  const resolved = current.resolved || progress.resolved;
  return withExtra(data, REQUESTER_REPLIES_KEY, `${reviews}${resolved ? "+" : ""}`);
}

/** Reminders already sent into each reviewer thread. */
export function remindersSent(data: EmailPluginData): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of list(data, REMINDERS_KEY)) {
    const m = /^(.+)=(\d+)$/.exec(entry);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

export function recordReminder(data: EmailPluginData, email: string, count: number) {
  const sent = remindersSent(data);
  sent.set(email, Math.max(sent.get(email) ?? 0, count));
  return withExtra(data, REMINDERS_KEY, [...sent].map(([e, n]) => `${e}=${n}`).join(","));
}

/** How many recipients were left out by `delivery.max_recipients` (0 when none). */
export function notEmailedCount(data: EmailPluginData): number {
  const n = Number(data.extra[OVERFLOW_KEY] ?? "0");
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

export function setNotEmailedCount(data: EmailPluginData, count: number): EmailPluginData {
  return withExtra(data, OVERFLOW_KEY, count > 0 ? String(count) : "");
}

// ---------------------------------------------------------------------------
// Escalation (`[escalation]`): threads of their own, replied into like
// reviewer threads, but tracked apart from the Go plugin's aggregate keys.

/** The escalation threads, in the `email_threads` format. */
export const ESCALATION_THREADS_KEY = "email_escalation_threads";
/** Replies in escalation threads: `<email>=<reviews sent>`, `+` once the resolution was sent. */
export const ESCALATION_REPLIES_KEY = "email_escalation_replies";
/**
 * The latest escalation level sent (1 = `escalation.after`, 2 = the first
 * `[[escalation.levels]]`, …): levels missed while the plugin was down are
 * skipped, so earlier levels are never sent after a later one. A position in
 * the config of the time; what is due is decided by `ESCALATION_AFTER_KEY`.
 */
export const ESCALATION_LEVEL_KEY = "email_escalation_level";
/**
 * The `after` of the latest escalation level sent, in milliseconds: kept by
 * time, so that levels removed from or put before it in the config later
 * neither silence the levels after it nor are sent late.
 */
export const ESCALATION_AFTER_KEY = "email_escalation_after";
/** Escalation recipients refused for good (never retried). */
export const ESCALATION_FAILED_KEY = "email_escalation_failed";

export function escalationThreads(data: EmailPluginData): EmailThread[] {
  return decodeThreadList(data.extra[ESCALATION_THREADS_KEY] ?? "");
}

export function addEscalationThread(data: EmailPluginData, thread: EmailThread): EmailPluginData {
  const threads = escalationThreads(data);
  if (threads.some((t) => t.email === thread.email)) return data;
  return withExtra(data, ESCALATION_THREADS_KEY, encodeThreadList([...threads, thread]));
}

export function escalationFailed(data: EmailPluginData): string[] {
  return list(data, ESCALATION_FAILED_KEY);
}

export function addEscalationFailed(data: EmailPluginData, recipient: string): EmailPluginData {
  const failed = escalationFailed(data);
  if (failed.includes(recipient)) return data;
  return withExtra(data, ESCALATION_FAILED_KEY, [...failed, recipient].join(","));
}

/** The latest escalation level sent; 0 when none. */
export function escalationLevel(data: EmailPluginData): number {
  const n = Number(data.extra[ESCALATION_LEVEL_KEY] ?? "0");
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/**
 * How far escalation went: the `after` (ms) of the latest level sent, or
 * `-Infinity` before any. A record of an earlier version has the level's
 * position only: when its latest escalation thread was opened, after the
 * request's creation (`created`), says how far it got whatever the config is
 * now (only the latest due level is ever sent); without that time, the
 * position is read through `levels`, the config now.
 */
export function escalationSentAfter(
  data: EmailPluginData,
  levels: readonly { readonly afterMs: number }[],
  created?: Date,
): number {
  const text = data.extra[ESCALATION_AFTER_KEY];
  const after = Number(text);
  if (text !== undefined && text !== "" && Number.isSafeInteger(after) && after >= 0) return after;
  const level = escalationLevel(data);
  if (level === 0) return -Infinity;
  const opened = escalationThreads(data)
    .map((t) => parseThreadTimestamp(t.timestamp)?.getTime())
    .filter((t): t is number => t !== undefined);
  if (created !== undefined && opened.length > 0) {
    return Math.max(...opened) - created.getTime();
  }
  return levels[Math.min(level, levels.length) - 1]?.afterMs ?? -Infinity;
}

/**
 * Records the level at position `level`, of `after` `afterMs`, as sent
 * (never going back from a time on record). A record of an earlier version
 * gets its time now: the threads just opened must not count as the proof
 * that the level was sent already.
 */
export function recordEscalationLevel(
  data: EmailPluginData,
  level: number,
  afterMs: number,
): EmailPluginData {
  const text = data.extra[ESCALATION_AFTER_KEY];
  const known = Number(text);
  if (text !== undefined && text !== "" && Number.isSafeInteger(known) && afterMs <= known) {
    return data;
  }
  const withAfter = withExtra(data, ESCALATION_AFTER_KEY, String(afterMs));
  return withExtra(withAfter, ESCALATION_LEVEL_KEY, String(level));
}

/** Each escalation thread's replies (none recorded = nothing sent yet). */
export function escalationProgress(data: EmailPluginData): Map<string, ThreadProgress> {
  const own = new Map<string, ThreadProgress>();
  for (const entry of list(data, ESCALATION_REPLIES_KEY)) {
    const m = /^(.+)=(\d+)(\+?)$/.exec(entry);
    if (m) own.set(m[1]!, { reviews: Number(m[2]), resolved: m[3] === "+" });
  }
  const out = new Map<string, ThreadProgress>();
  for (const thread of escalationThreads(data)) {
    out.set(thread.email, own.get(thread.email) ?? { reviews: 0, resolved: false });
  }
  return out;
}

export function recordEscalationReplies(
  data: EmailPluginData,
  email: string,
  progress: ThreadProgress,
): EmailPluginData {
  const all = escalationProgress(data);
  const current = all.get(email);
  if (current === undefined) return data;
  all.set(email, {
    reviews: Math.max(current.reviews, progress.reviews),
    resolved: current.resolved || progress.resolved,
  });
  const entries = [...all]
    .filter(([, p]) => p.reviews > 0 || p.resolved)
    .map(([e, p]) => `${e}=${p.reviews}${p.resolved ? "+" : ""}`);
  return withExtra(data, ESCALATION_REPLIES_KEY, entries.join(","));
}

// ---------------------------------------------------------------------------
// Access ending soon (`[access_expiry]`)

/**
 * The shortest `warn_before` (in milliseconds) whose warning was sent: the
 * longer ones are over too (one warning on catch-up, never the missed ones).
 */
export const EXPIRY_WARNED_KEY = "email_expiry_warned";
/**
 * The thread of the warnings, in the `email_threads` format, when they do
 * not go into the requester's thread (`delivery.notify_requester` off).
 */
export const EXPIRY_THREAD_KEY = "email_expiry_thread";

/** The shortest `warn_before` already warned for, in ms; undefined when none. */
export function expiryWarned(data: EmailPluginData): number | undefined {
  const text = data.extra[EXPIRY_WARNED_KEY];
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export function recordExpiryWarned(data: EmailPluginData, warnBeforeMs: number): EmailPluginData {
  const current = expiryWarned(data);
  if (current !== undefined && current <= warnBeforeMs) return data;
  return withExtra(data, EXPIRY_WARNED_KEY, String(warnBeforeMs));
}

export function expiryThread(data: EmailPluginData): EmailThread | undefined {
  return decodeThreadList(data.extra[EXPIRY_THREAD_KEY] ?? "")[0];
}

export function setExpiryThread(data: EmailPluginData, thread: EmailThread): EmailPluginData {
  return withExtra(data, EXPIRY_THREAD_KEY, encodeThreadList([thread]));
}
