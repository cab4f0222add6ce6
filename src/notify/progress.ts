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
 */
import {
  decodeThreadList,
  type EmailPluginData,
  type EmailThread,
  encodeThreadList,
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
