/**
 * What is left to send for one request, from its latest state and its
 * plugin data. Pure: the app executes the plan and records each step.
 */
import type { AccessRequest, AccessReview } from "../teleport/types.ts";
import type { EmailPluginData, EmailThread, ResolutionTag } from "./plugin_data.ts";
import { failedRecipients, plannedRecipients, threadProgress } from "./progress.ts";

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
}

export function isEmptyPlan(plan: Plan): boolean {
  return plan.newThreads.length === 0 && plan.replies.length === 0 && !plan.markResolved;
}

/**
 * The work for `target` given its stored record (`undefined` = none yet;
 * the caller creates it for a pending request first).
 */
export function planWork(target: Target, data: EmailPluginData | undefined): Plan {
  const empty: Plan = { newThreads: [], replies: [], markResolved: false };
  if (data === undefined || data.resolution !== "") return empty;
  const resolution = resolutionOf(target);

  // New threads only while the request is pending: once it is resolved a
  // reviewer has nothing left to do.
  let newThreads: string[] = [];
  if (target.kind === "request" && target.request.state === "PENDING") {
    const done = new Set([...data.emailThreads.map((t) => t.email), ...failedRecipients(data)]);
    newThreads = plannedRecipients(data).filter((r) => !done.has(r));
  }

  const reviews = target.kind === "request" ? target.request.reviews : [];
  const progress = threadProgress(data);
  const replies: { thread: EmailThread; items: Reply[] }[] = [];
  for (const thread of data.emailThreads) {
    const p = progress.get(thread.email) ?? { reviews: 0, resolved: false };
    if (p.resolved) continue;
    const items: Reply[] = [];
    for (let index = p.reviews; index < reviews.length; index++) {
      items.push({ kind: "review", index, review: reviews[index]! });
    }
    if (resolution) items.push({ kind: "resolution" });
    if (items.length > 0) replies.push({ thread, items });
  }
  const markResolved = resolution !== undefined && data.emailThreads.length === 0;
  return { newThreads, replies, markResolved };
}
