/**
 * The notifier: turns access-request changes into emails, exactly once.
 *
 * For each request it reads the plugin data, plans what is left to send
 * (`plan.ts`), takes the request's claim by compare-and-swap, sends, and
 * records each email right after it was accepted (`progress.ts`). A restart
 * or a second instance therefore resumes what is missing without repeating
 * what was sent. Work that fails for a transient reason is retried later.
 */
import type { Logger } from "@logtape/logtape";
import type { MailError, OutgoingEmail, SentEmail } from "../mail/mailer.ts";
import type { KeyedTask } from "../teleport/watcher.ts";
import type {
  AccessRequest,
  PingInfo,
  PluginData,
  TeleportClient,
  WatchEvent,
} from "../teleport/types.ts";
import type { Metrics } from "../status/metrics.ts";
import { modifyPluginData } from "./cas.ts";
import {
  decodePluginData,
  type EmailPluginData,
  type EmailThread,
  EMPTY_PLUGIN_DATA,
  formatThreadTimestamp,
} from "./plugin_data.ts";
import {
  addFailed,
  addThread,
  type Claim,
  claimFree,
  markResolved,
  readClaim,
  recordReminder,
  recordReplies,
  recordRequesterReplies,
  requesterProgress,
  setClaim,
  setPlannedRecipients,
  setPlannedRequester,
  setRequesterThread,
  threadProgress,
} from "./progress.ts";
import {
  isEmptyPlan,
  planWork,
  type ReminderPolicy,
  type Reply,
  resolutionOf,
  type Target,
  targetId,
} from "./plan.ts";
import { recipientsFor } from "./recipients.ts";
import type { RuleSet } from "./rules.ts";
import { isPlainAddress } from "../lib/address.ts";
import {
  type MessageContent,
  newRequestMessage,
  reminderMessage,
  requesterReceivedMessage,
  type RequestFacts,
  requestWebLink,
  resolutionMessage,
  reviewMessage,
} from "./message.ts";
import { backoffDelay, type BackoffOptions, sleep } from "../lib/backoff.ts";

/** How long a claim holds without renewal; renewed every third of it while sending. */
export const CLAIM_TTL_MS = 30_000;
/** Retries of a request whose processing failed: 5 s doubling up to 10 min, for ever. */
export const REQUEST_RETRY_BACKOFF: BackoffOptions = { baseMs: 5_000, capMs: 10 * 60_000 };
/**
 * Retries of a progress record the cluster could not take (auth server
 * restarting): 50 ms doubling up to 2 s. The email is already out; giving
 * up would send it again on the request's next try.
 */
export const RECORD_RETRY_BACKOFF: BackoffOptions = { baseMs: 50, capMs: 2_000 };
/** How long a progress record is retried before the request is left to its own retry. */
export const RECORD_RETRY_MAX_MS = 2 * 60_000;
/**
 * gRPC codes of failures that may pass: UNKNOWN, DEADLINE_EXCEEDED,
 * RESOURCE_EXHAUSTED, ABORTED, INTERNAL (a reset stream), UNAVAILABLE.
 */
const TRANSIENT_GRPC_CODES = new Set([2, 4, 8, 10, 13, 14]);

export interface AppDeps {
  readonly client: TeleportClient;
  /** Sends one email, retrying transient failures; rejects with a `MailError` when it gives up. */
  send(email: OutgoingEmail, signal: AbortSignal): Promise<SentEmail>;
  readonly cluster: PingInfo;
  readonly roleToRecipients: Readonly<Record<string, readonly string[]>>;
  /** Identifies this process in claims: unique per running instance. */
  readonly owner: string;
  readonly log: Logger;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly claimTtlMs?: number;
  readonly retryBackoff?: BackoffOptions;
  /**
   * Whether a claim's owner is known to be gone (e.g. an earlier run of this
   * plugin on this host), so its claim need not be waited out.
   */
  isOwnerGone?(owner: string): boolean;
  /** Where counters go (the status listener's registry); none by default. */
  readonly metrics?: Metrics;
  /** Access monitoring rules; matching ones replace `roleToRecipients`. */
  readonly rules?: RuleSet;
  /** Re-lists the rules (after every INIT); may disable them when not allowed. */
  reloadRules?(signal: AbortSignal): Promise<void>;
  /** `delivery.notify_requester`: the requester gets a thread of their own. */
  readonly notifyRequester?: boolean;
  /** `[reminders]`: remind reviewers of pending requests nobody reviewed. */
  readonly reminders?: ReminderPolicy;
}

/** Raised when our claim on a request was taken over (we were too slow): stop sending. */
class LostClaimError extends Error {
  constructor(requestId: string) {
    super(`Lost the claim on request "${requestId}" to another instance`);
    this.name = "LostClaimError";
  }
}

type Resolution = { tag: NonNullable<ReturnType<typeof resolutionOf>>["tag"]; reason: string };

export class NotifyApp {
  readonly #deps: AppDeps;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #claimTtl: number;
  readonly #locks = new Map<string, Promise<void>>();
  readonly #retries = new Map<string, { timer: ReturnType<typeof setTimeout> }>();
  readonly #retryAttempts = new Map<string, number>();
  #stopped = false;
  /**
   * The latest rule listing (settled either way): new requests wait for it,
   * so a request seen right after INIT is routed by the rules, not the map.
   */
  #rulesLoaded: Promise<void> = Promise.resolve();

  constructor(deps: AppDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
    this.#claimTtl = deps.claimTtlMs ?? CLAIM_TTL_MS;
  }

  /** Requests waiting for a retry. */
  get retryQueueDepth(): number {
    return this.#retries.size;
  }

  /** Cancels the pending retries (shutdown). */
  stop(): void {
    this.#stopped = true;
    for (const { timer } of this.#retries.values()) clearTimeout(timer);
    this.#retries.clear();
  }

  /** Watcher hook: one PUT or DELETE event. */
  async handleEvent(event: Exclude<WatchEvent, { type: "init" }>, signal: AbortSignal) {
    this.#deps.metrics?.eventProcessed(event.type);
    if (event.type === "put" && event.kind === "access_request") {
      await this.process({ kind: "request", request: event.request }, signal);
    } else if (event.type === "delete" && event.kind === "access_request") {
      await this.process({ kind: "deleted", requestId: event.name }, signal);
    } else if (event.type === "put" && event.kind === "access_monitoring_rule") {
      this.#deps.rules?.put(event.rule);
    } else if (event.type === "delete" && event.kind === "access_monitoring_rule") {
      this.#deps.rules?.delete(event.name);
    }
  }

  /**
   * Watcher hook after every INIT: every request with work left, and every
   * unresolved record whose request disappeared while we were away.
   */
  async reconcile(signal: AbortSignal): Promise<KeyedTask[]> {
    const loading = this.#deps.reloadRules?.(signal) ?? Promise.resolve();
    this.#rulesLoaded = loading.catch(() => {});
    await loading;
    const [requests, stored] = await Promise.all([
      this.#deps.client.listAccessRequests({}, signal),
      this.#deps.client.listPluginData(signal),
    ]);
    const dataById = new Map(stored.map((s) => [s.requestId, decodePluginData(s.data)]));
    const tasks: KeyedTask[] = [];
    const seen = new Set<string>();
    for (const request of requests) {
      seen.add(request.id);
      const target: Target = { kind: "request", request };
      const data = dataById.get(request.id);
      const pendingNew = data === undefined && request.state === "PENDING";
      if (!pendingNew && isEmptyPlan(this.#plan(target, data)) && !hasClaim(data)) continue;
      tasks.push({ key: `access_request/${request.id}`, run: (s) => this.process(target, s) });
    }
    for (const [requestId, data] of dataById) {
      if (seen.has(requestId)) continue;
      const target: Target = { kind: "deleted", requestId };
      if (isEmptyPlan(this.#plan(target, data))) continue;
      tasks.push({ key: `access_request/${requestId}`, run: (s) => this.process(target, s) });
    }
    this.#deps.log.info("Reconciling {count} access request(s) after (re)connecting", {
      count: tasks.length,
    });
    return tasks;
  }

  /**
   * Sends the reminders that are due: every pending request nobody reviewed
   * whose reminder time has come (checked against the plugin data, so
   * restarts and replicas never remind twice).
   */
  async checkReminders(signal: AbortSignal): Promise<void> {
    const policy = this.#deps.reminders;
    if (policy === undefined || this.#stopped) return;
    const now = this.#now();
    const requests = await this.#deps.client.listAccessRequests({}, signal);
    for (const request of requests) {
      if (request.state !== "PENDING" || request.reviews.length > 0 || !request.created) continue;
      if (now < request.created.getTime() + policy.afterMs) continue;
      await this.process({ kind: "request", request }, signal);
    }
  }

  /** Brings one request up to date; failures are logged and the request retried later. */
  async process(target: Target, signal: AbortSignal): Promise<void> {
    const id = targetId(target);
    await this.#withLock(id, async () => {
      try {
        const retryAt = await this.#processOnce(target, signal);
        if (retryAt === undefined) this.#retryAttempts.delete(id);
        else this.#scheduleRetry(id, Math.max(0, retryAt - this.#now()));
      } catch (error) {
        const attempt = this.#retryAttempts.get(id) ?? 0;
        this.#retryAttempts.set(id, attempt + 1);
        const delay = backoffDelay(
          attempt,
          this.#deps.retryBackoff ?? REQUEST_RETRY_BACKOFF,
          this.#random,
        );
        this.#deps.log.with({ requestId: id }).error(
          "Processing the request failed: {error}; retrying in {delay} ms",
          { error, delay },
        );
        this.#scheduleRetry(id, delay);
      }
    });
  }

  /** Returns when to look again (another instance holds the claim), or undefined when done. */
  async #processOnce(target: Target, signal: AbortSignal): Promise<number | undefined> {
    const { client } = this.#deps;
    const id = targetId(target);
    const log = this.#deps.log.with({ requestId: id });
    let raw = await client.getPluginData(id, signal);
    let data = raw === undefined ? undefined : decodePluginData(raw);
    let claimedAlready = false;

    if (data === undefined) {
      if (target.kind !== "request" || target.request.state !== "PENDING") {
        log.debug("No email was sent for this request; nothing to follow up");
        return undefined;
      }
      const created = await this.#create(target.request, signal);
      if (created.data === undefined) return undefined;
      data = created.data;
      raw = created.raw;
      // Whoever created the record holds its claim.
      claimedAlready = created.changed;
    }

    let plan = this.#plan(target, data);
    if (isEmptyPlan(plan) && readClaim(data)?.owner !== this.#deps.owner) return undefined;

    // Take (or keep) the claim: only its holder sends for this request.
    if (!claimedAlready) {
      const claimed = await modifyPluginData(client, id, (current) => {
        if (current === undefined) return undefined;
        if (!this.#claimFree(current)) return undefined;
        return setClaim(current, this.#newClaim());
      }, this.#casOptions(signal, raw));
      const holder = claimed.data && readClaim(claimed.data);
      if (!claimed.data || holder?.owner !== this.#deps.owner) {
        if (holder) {
          log.debug("Another instance ({owner}) is sending for this request", {
            owner: holder.owner,
          });
          return holder.expiresAt + 1;
        }
        return undefined;
      }
      data = claimed.data;
      raw = claimed.raw;
      plan = this.#plan(target, data);
    }

    const recorder = new Recorder(this, id, signal, raw, log);
    const renew = setInterval(() => recorder.renew(), Math.max(1, this.#claimTtl / 3));
    const errors: unknown[] = [];
    try {
      const facts = factsOf(target, data);
      const clusterName = this.#deps.cluster.clusterName;
      const link = this.#link(id);
      const opening: Promise<void>[] = [];
      if (plan.newThreads.length > 0 && target.kind === "request") {
        const content = newRequestMessage({ clusterName, request: target.request, link });
        opening.push(
          ...plan.newThreads.map((to) =>
            this.#openThread(log, recorder, "new request", to, content, addThread, signal)
          ),
        );
      }
      if (plan.requesterNew !== undefined && target.kind === "request") {
        const content = requesterReceivedMessage({ clusterName, request: target.request, link });
        opening.push(
          this.#openThread(
            log,
            recorder,
            "requester",
            plan.requesterNew,
            content,
            setRequesterThread,
            signal,
          ),
        );
      }
      if (opening.length > 0) {
        for (const result of await Promise.allSettled(opening)) {
          if (result.status === "rejected") errors.push(result.reason);
        }
        // Threads opened now may owe replies (reviews that already exist).
        plan = this.#plan(target, recorder.latest ?? data);
      }
      const resolution = resolutionOf(target);
      const replying: Promise<void>[] = plan.replies.map(({ thread, items }) =>
        this.#replyInThread(log, recorder, facts, thread, items, resolution, signal, false)
      );
      if (plan.requesterReplies) {
        const { thread, items } = plan.requesterReplies;
        replying.push(
          this.#replyInThread(log, recorder, facts, thread, items, resolution, signal, true),
        );
      }
      if (plan.reminders && target.kind === "request") {
        const content = reminderMessage({ clusterName, request: target.request, link });
        replying.push(...plan.reminders.map(async ({ thread, count }) => {
          await this.#sendOne(
            log,
            "reminder",
            thread.email,
            content,
            thread.messageId || undefined,
            signal,
          );
          await recorder.record((d) => recordReminder(d, thread.email, count));
        }));
      }
      for (const result of await Promise.allSettled(replying)) {
        if (result.status === "rejected") errors.push(result.reason);
      }
      if (plan.markResolved && resolution) {
        await recorder.record((d) => markResolved(d, resolution));
      }
    } finally {
      clearInterval(renew);
      await recorder.release();
    }
    if (errors.length > 0) throw errors[0];
    return undefined;
  }

  /** Sends the email that opens a thread and records the thread (or the refusal). */
  async #openThread(
    log: Logger,
    recorder: Recorder,
    kind: string,
    to: string,
    content: MessageContent,
    record: (d: EmailPluginData, thread: EmailThread) => EmailPluginData,
    signal: AbortSignal,
  ): Promise<void> {
    const sent = await this.#sendOne(log, kind, to, content, undefined, signal);
    if (sent === undefined) {
      await recorder.record((d) => addFailed(d, to));
      return;
    }
    const thread: EmailThread = {
      email: to,
      timestamp: formatThreadTimestamp(new Date(this.#now())),
      messageId: sent.messageId,
    };
    await recorder.record((d) => record(d, thread));
  }

  #plan(target: Target, data: EmailPluginData | undefined) {
    return planWork(target, data, { now: this.#now(), reminders: this.#deps.reminders });
  }

  /**
   * Creates the record for a new pending request, claimed by us. `changed`
   * is false when another instance created it first.
   */
  async #create(request: AccessRequest, signal: AbortSignal) {
    const log = this.#deps.log.with({ requestId: request.id });
    await this.#rulesLoaded;
    // As in the Go plugin, matching rules that name nobody leave the
    // routing to role_to_recipients.
    const matched = this.#deps.rules?.recipientsFor(request);
    const routed = matched && matched.recipients.length > 0 ? matched : undefined;
    if (routed) {
      log.info("Recipients from access monitoring rule(s) {rules}", { rules: routed.rules });
    } else if (matched) {
      for (const entry of matched.dropped) {
        log.warn("Not emailing {recipient}: not a plain email address", { recipient: entry });
      }
      log.warn(
        "Access monitoring rule(s) {rules} name no email address: recipients come from role_to_recipients",
        { rules: matched.rules },
      );
    }
    const { recipients, dropped } = routed ?? recipientsFor(request, this.#deps.roleToRecipients);
    for (const entry of dropped) {
      log.warn("Not emailing {recipient}: not a plain email address", { recipient: entry });
    }
    if (recipients.length === 0) {
      log.warn("No recipient for this request: check role_to_recipients");
    }
    const result = await modifyPluginData(this.#deps.client, request.id, (current) => {
      if (current !== undefined) return undefined;
      const fresh: EmailPluginData = {
        ...EMPTY_PLUGIN_DATA,
        user: request.user,
        roles: request.roles,
        requestReason: request.requestReason,
      };
      let next = setPlannedRecipients(fresh, recipients);
      if (this.#deps.notifyRequester && isPlainAddress(request.user)) {
        next = setPlannedRequester(next, request.user);
      }
      return setClaim(next, this.#newClaim());
    }, this.#casOptions(signal, {}));
    return result;
  }

  /** Options for a compare-and-swap: `known` saves the read when it is still current. */
  #casOptions(signal: AbortSignal, known: PluginData | undefined) {
    return {
      signal,
      ...(known ? { known } : {}),
      onConflict: () => this.#deps.metrics?.casConflict(),
    };
  }

  async #replyInThread(
    log: Logger,
    recorder: Recorder,
    facts: RequestFacts,
    thread: EmailThread,
    items: readonly Reply[],
    resolution: Resolution | undefined,
    signal: AbortSignal,
    requester: boolean,
  ) {
    const clusterName = this.#deps.cluster.clusterName;
    const link = this.#link(facts.id);
    const latest = recorder.latest ?? EMPTY_PLUGIN_DATA;
    let progress =
      (requester ? requesterProgress(latest) : threadProgress(latest).get(thread.email)) ??
        { reviews: 0, resolved: false };
    for (const item of items) {
      const content = item.kind === "review"
        ? reviewMessage({ clusterName, requestId: facts.id, review: item.review, link })
        : resolutionMessage({ clusterName, request: facts, link, resolution: resolution! });
      const kind = item.kind === "review" ? "review" : "resolution";
      await this.#sendOne(log, kind, thread.email, content, thread.messageId || undefined, signal);
      progress = item.kind === "review"
        ? { reviews: Math.max(progress.reviews, item.index + 1), resolved: progress.resolved }
        : { reviews: progress.reviews, resolved: true };
      const p = progress;
      await recorder.record((d) =>
        requester
          ? recordRequesterReplies(d, p)
          : recordReplies(d, thread.email, p, resolution ?? { tag: "EXPIRED", reason: "" })
      );
    }
  }

  /**
   * Sends one email. Resolves with what was sent, or `undefined` when the
   * email was refused for good (logged; not retried). Rejects for anything
   * that may work later.
   */
  async #sendOne(
    log: Logger,
    kind: string,
    to: string,
    content: MessageContent,
    inReplyTo: string | undefined,
    signal: AbortSignal,
  ): Promise<SentEmail | undefined> {
    const email: OutgoingEmail = {
      to,
      subject: content.subject,
      text: content.text,
      html: content.html,
      ...(inReplyTo ? { inReplyTo } : {}),
    };
    const metric = kind === "new request" ? "new" : kind;
    const started = performance.now();
    try {
      const sent = await this.#deps.send(email, signal);
      this.#deps.metrics?.emailSent(metric, (performance.now() - started) / 1000);
      log.info("Sent {kind} email to {to}", { kind, to, messageId: sent.messageId });
      return sent;
    } catch (error) {
      const mailError = error as Partial<MailError>;
      const permanent = mailError?.name === "MailError" && mailError.transient === false;
      this.#deps.metrics?.emailFailed(metric, permanent ? "permanent" : "transient");
      if (permanent) {
        log.error("Email to {to} refused for good ({kind}): {error}", {
          to,
          kind,
          error,
          code: mailError.code,
        });
        return undefined;
      }
      log.warn("Email to {to} not sent yet ({kind}): {error}", { to, kind, error });
      throw error;
    }
  }

  #link(requestId: string): string | undefined {
    const { cluster } = this.#deps;
    if (!cluster.advancedAccessWorkflows) return undefined;
    return requestWebLink(cluster.proxyPublicAddr, requestId);
  }

  #claimFree(data: EmailPluginData): boolean {
    if (claimFree(data, this.#deps.owner, this.#now())) return true;
    const holder = readClaim(data);
    return holder !== undefined && (this.#deps.isOwnerGone?.(holder.owner) ?? false);
  }

  #newClaim(): Claim {
    return { owner: this.#deps.owner, expiresAt: this.#now() + this.#claimTtl };
  }

  /** @internal Used by Recorder. */
  writeUnderClaim(
    requestId: string,
    update: (d: EmailPluginData) => EmailPluginData,
    signal: AbortSignal,
    known: PluginData | undefined,
  ) {
    return modifyPluginData(this.#deps.client, requestId, (current) => {
      if (current === undefined || readClaim(current)?.owner !== this.#deps.owner) {
        throw new LostClaimError(requestId);
      }
      return setClaim(update(current), this.#newClaim());
    }, this.#casOptions(signal, known));
  }

  /** @internal Used by Recorder. */
  releaseClaim(requestId: string, signal: AbortSignal, known: PluginData | undefined) {
    return modifyPluginData(this.#deps.client, requestId, (current) => {
      if (current === undefined || readClaim(current)?.owner !== this.#deps.owner) return undefined;
      return setClaim(current, undefined);
    }, this.#casOptions(signal, known));
  }

  #scheduleRetry(requestId: string, delayMs: number) {
    if (this.#stopped || this.#retries.has(requestId)) return;
    const timer = setTimeout(() => {
      this.#retries.delete(requestId);
      this.#deps.metrics?.setRetryQueueDepth(this.#retries.size);
      this.#retry(requestId).catch((error) => {
        this.#deps.log.with({ requestId }).error("Retry failed: {error}", { error });
      });
    }, delayMs);
    this.#retries.set(requestId, { timer });
    this.#deps.metrics?.setRetryQueueDepth(this.#retries.size);
  }

  async #retry(requestId: string) {
    if (this.#stopped) return;
    const signal = AbortSignal.timeout(10 * 60_000);
    const [request] = await this.#deps.client.listAccessRequests({ id: requestId }, signal);
    const target: Target = request ? { kind: "request", request } : { kind: "deleted", requestId };
    await this.process(target, signal);
  }

  async #withLock(key: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    this.#locks.set(key, run);
    try {
      await run;
    } finally {
      if (this.#locks.get(key) === run) this.#locks.delete(key);
    }
  }
}

/** A failed Teleport call that may work when tried again (a gRPC status in `TRANSIENT_GRPC_CODES`). */
function isTransientApiError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" && TRANSIENT_GRPC_CODES.has(code);
}

function hasClaim(data: EmailPluginData | undefined): boolean {
  return data !== undefined && readClaim(data) !== undefined;
}

/** What a message shows: the request, or what the record kept of a deleted one. */
function factsOf(target: Target, data: EmailPluginData): RequestFacts {
  if (target.kind === "request") return target.request;
  return {
    id: target.requestId,
    user: data.user,
    roles: data.roles,
    requestReason: data.requestReason,
  };
}

/**
 * Serialises one request's plugin-data writes (sends run in parallel, their
 * records one after another) and keeps the latest record. A write the
 * cluster could not take for a passing reason is tried again (up to
 * `RECORD_RETRY_MAX_MS`): the email it records is already out, and an
 * unrecorded email is sent again by the request's next try.
 */
class Recorder {
  #queue: {
    update: (d: EmailPluginData) => EmailPluginData;
    resolve: () => void;
    reject: (error: unknown) => void;
  }[] = [];
  #writing: Promise<void> | undefined;
  latest: EmailPluginData | undefined;

  constructor(
    private readonly app: NotifyApp,
    private readonly requestId: string,
    private readonly signal: AbortSignal,
    /** The stored map as we last wrote it: saves a read per write while we hold the claim. */
    private raw: PluginData | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Records `update`. Updates that arrive while a write is under way are
   * applied together in the next write (one round trip for several sends).
   */
  record(update: (d: EmailPluginData) => EmailPluginData): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ update, resolve, reject });
      this.#writing ??= this.#drain().finally(() => (this.#writing = undefined));
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      try {
        await this.#write((d) => batch.reduce((acc, item) => item.update(acc), d));
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
  }

  async #write(update: (d: EmailPluginData) => EmailPluginData): Promise<void> {
    const started = Date.now();
    for (let attempt = 0;; attempt++) {
      try {
        const result = await this.app.writeUnderClaim(
          this.requestId,
          update,
          this.signal,
          this.raw,
        );
        this.latest = result.data;
        this.raw = result.raw;
        if (attempt > 0) this.log.info("Progress recorded after {attempt} retries", { attempt });
        return;
      } catch (error) {
        const late = Date.now() - started >= RECORD_RETRY_MAX_MS;
        if (!isTransientApiError(error) || this.signal.aborted || late) throw error;
        if (attempt === 0) {
          this.log.warn("Cannot record progress yet: {error}; retrying", { error });
        }
        await sleep(backoffDelay(attempt, RECORD_RETRY_BACKOFF), this.signal);
      }
    }
  }

  renew(): void {
    this.record((d) => d).catch(() => {});
  }

  async release(): Promise<void> {
    while (this.#writing) await this.#writing;
    try {
      await this.app.releaseClaim(this.requestId, this.signal, this.raw);
    } catch {
      // The claim expires by itself.
    }
  }
}
