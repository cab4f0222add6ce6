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
import type { KeyedTask } from "../lib/keyed_queue.ts";
import type { Metrics } from "../lib/metrics.ts";
import { type Clock, REAL_CLOCK, type Timer } from "../lib/clock.ts";
import { Activity } from "../lib/activity.ts";
import { backoffDelay, type BackoffOptions } from "../lib/backoff.ts";
import { mailRetryDelay, SEND_RETRY_BACKOFF } from "../mail/retry.ts";
import { isRecipientAddress } from "../lib/address.ts";
import {
  type AccessRequest,
  isTeleportError,
  type PingInfo,
  type PluginData,
  type TeleportClient,
  type WatchEvent,
} from "../teleport/types.ts";
import { modifyPluginData } from "./cas.ts";
import {
  decodePluginData,
  type EmailPluginData,
  type EmailThread,
  EMPTY_PLUGIN_DATA,
  formatThreadTimestamp,
} from "./plugin_data.ts";
import {
  addEscalationFailed,
  addEscalationThread,
  addFailed,
  addThread,
  type Claim,
  claimFree,
  escalationProgress,
  escalationThreads,
  failedRecipients,
  markResolved,
  notEmailedCount,
  plannedRecipients,
  readClaim,
  recordEscalationLevel,
  recordEscalationReplies,
  recordExpiryWarned,
  recordReminder,
  recordReplies,
  recordRequesterReplies,
  requesterProgress,
  setClaim,
  setExpiryThread,
  setNotEmailedCount,
  setPlannedRecipients,
  setPlannedRequester,
  setRequesterThread,
  threadProgress,
} from "./progress.ts";
import {
  type AccessExpiryPolicy,
  type EscalationPolicy,
  type ExpiryWarning,
  isEmptyPlan,
  type Plan,
  planWork,
  type ReminderPolicy,
  type Reply,
  resolutionOf,
  type Target,
  targetId,
} from "./plan.ts";
import { routeRecipients, type RoutingNote } from "./recipients.ts";
import type { RuleSource } from "./rules.ts";
import { Recorder, type RecordUpdate } from "./recorder.ts";
import { UserTraits } from "./traits.ts";
import {
  accessExpiryMessage,
  escalationMessage,
  type MessageContent,
  newRequestMessage,
  reminderMessage,
  requesterReceivedMessage,
  type RequestFacts,
  requestWebLink,
  resolutionMessage,
  reviewMessage,
} from "./message.ts";
import type { AccessReview } from "../teleport/types.ts";
import { deadline } from "../lib/deadline.ts";
import type { MessageTemplates } from "./template.ts";

/** How long a claim holds without renewal; renewed every third of it while sending. */
export const CLAIM_TTL_MS = 30_000;
/** Retries of a request whose processing failed: 5 s doubling up to 10 min, for ever. */
export const REQUEST_RETRY_BACKOFF: BackoffOptions = { baseMs: 5_000, capMs: 10 * 60_000 };
/** Default of `delivery.max_recipients`: "new request" emails per request, at most. */
export const DEFAULT_MAX_RECIPIENTS = 100;
/**
 * The request reason as kept in plugin data (the Go plugin's
 * `request_reason`, shown when an expired request is reported): cut to this
 * many characters so that a huge reason cannot make the record too large.
 */
export const MAX_STORED_REASON_CHARS = 1_000;

/** Default of `delivery.catch_up_window`: one day. */
export const DEFAULT_CATCH_UP_WINDOW_MS = 24 * 3_600_000;
/** Request ids remembered as seen (see `#seen`); the oldest are forgotten first. */
const MAX_SEEN_REQUESTS = 10_000;
/** Ids of skipped requests named in the log line, at most. */
const MAX_LOGGED_IDS = 10;
/** Emails kept so that their retries keep their Message-ID (see `AppDeps.send`). */
const MAX_FAILED_FOR_NOW = 500;

/**
 * Deadline of one check for due work (reminders, escalations, expiry
 * warnings: listing the requests and sending what is due).
 */
export const REMINDER_CHECK_DEADLINE_MS = 5 * 60_000;
/** Deadline of one retry of a request (reading it again and bringing it up to date). */
export const RETRY_DEADLINE_MS = 10 * 60_000;
/** How long retries and due checks under way may finish once stopping (as the watcher's handlers). */
export const SHUTDOWN_GRACE_MS = 15_000;

export interface AppDeps {
  readonly client: TeleportClient;
  /**
   * Sends one email, one try; rejects with a `MailError` (transient or
   * permanent). A transient failure is tried again with the request's retry
   * (`mailRetryBackoff`), given the same `email` object again while its
   * content is the same (the SMTP mailer then keeps its Message-ID).
   */
  send(email: OutgoingEmail, signal: AbortSignal): Promise<SentEmail>;
  /**
   * Told of a content about to be sent (a new request's opening emails,
   * while its record is written), so that the mailer can get it ready in
   * the meantime (`Mailer.prepare`). Sends nothing. Returns what to call
   * when the content will not be sent after all.
   */
  prepare?(content: MessageContent): () => void;
  /**
   * Told of the recipients of a new request's opening emails while its
   * record is written (`Mailer.openEnvelopes`). Delivers nothing. Returns
   * what to call when they will not be emailed after all.
   */
  openEnvelopes?(recipients: readonly string[]): () => void;
  readonly cluster: PingInfo;
  readonly roleToRecipients: Readonly<Record<string, readonly string[]>>;
  /** Identifies this process in claims: unique per running instance. */
  readonly owner: string;
  readonly log: Logger;
  /** Wall time and timers; default the real clock. */
  readonly clock?: Clock;
  /** Counts the retries waiting and the reminder checks under way. */
  readonly activity?: Activity;
  readonly random?: () => number;
  /** Default {@linkcode SHUTDOWN_GRACE_MS}; see `beginStop`. */
  readonly shutdownGraceMs?: number;
  readonly claimTtlMs?: number;
  readonly retryBackoff?: BackoffOptions;
  /** Backoff of a request whose emails failed for now; default `SEND_RETRY_BACKOFF` (minutes). */
  readonly mailRetryBackoff?: BackoffOptions;
  /**
   * Whether a claim's owner is known to be gone (e.g. an earlier run of this
   * plugin on this host), so its claim need not be waited out.
   */
  isOwnerGone?(owner: string): boolean;
  /** Where counters go (the status listener's registry); none by default. */
  readonly metrics?: Metrics;
  /** Access monitoring rules; matching ones replace `roleToRecipients`. */
  readonly rules?: RuleSource;
  /** `delivery.notify_requester`: the requester gets a thread of their own. */
  readonly notifyRequester?: boolean;
  /** `[reminders]`: remind reviewers of pending requests nobody reviewed. */
  readonly reminders?: ReminderPolicy;
  /** `[escalation]`: email escalation lists about pending requests nobody reviewed. */
  readonly escalation?: EscalationPolicy;
  /** `[access_expiry]`: warn requesters before their granted access ends. */
  readonly accessExpiry?: AccessExpiryPolicy;
  /** `delivery.max_recipients`: at most this many "new request" emails per request. */
  readonly maxRecipients?: number;
  /**
   * `delivery.catch_up_window`: a pending request that no instance has
   * handled yet is caught up after a (re)connect only if it was created
   * within this window (a first deployment must not mail a stale backlog);
   * 0 catches up none. Requests seen on the watch stream are always handled.
   */
  readonly catchUpWindowMs?: number;
  /** `[templates]`: the operator's subjects and texts; the built-in emails without it. */
  readonly templates?: MessageTemplates;
}

/** Raised when our claim on a request was taken over (we were too slow): stop sending. */
class LostClaimError extends Error {
  constructor(requestId: string) {
    super(`Lost the claim on request "${requestId}" to another instance`);
    this.name = "LostClaimError";
  }
}

type Resolution = { tag: NonNullable<ReturnType<typeof resolutionOf>>["tag"]; reason: string };

/** What every send and record for one request needs while we hold its claim. */
interface RequestContext {
  readonly id: string;
  readonly target: Target;
  readonly log: Logger;
  readonly recorder: Recorder;
  readonly facts: RequestFacts;
  readonly clusterName: string;
  readonly link: string | undefined;
  readonly resolution: Resolution | undefined;
  readonly signal: AbortSignal;
  /** The records queued for this request's emails (rejected when their write fails). */
  readonly records: Promise<void>[];
}

/** The email kinds, as logged and counted. */
type EmailKind =
  | "new request"
  | "requester"
  | "review"
  | "resolution"
  | "reminder"
  | "escalation"
  | "access_expiry";

/** Which kind of thread replies go into (each keeps its own progress). */
type ThreadRole = "reviewer" | "requester" | "escalation";

export class NotifyApp {
  readonly #deps: AppDeps;
  readonly #clock: Clock;
  readonly #activity: Activity;
  readonly #traits: UserTraits;
  readonly #random: () => number;
  readonly #claimTtl: number;
  readonly #locks = new Map<string, Promise<void>>();
  readonly #retries = new Map<string, { timer: Timer; end: () => void }>();
  readonly #retryAttempts = new Map<string, number>();
  /** Emails whose last try failed for now, by request, kind, recipient and thread. */
  readonly #failedForNow = new Map<string, OutgoingEmail>();
  /**
   * Per request, records of emails that went out but could not be written
   * (e.g. refused as too large): planned as done, so that no retry in this
   * process sends them again; written with the request's next record.
   */
  readonly #unrecorded = new Map<string, RecordUpdate[]>();
  #reminderTimer: Timer | undefined;
  /**
   * Requests this process has looked at (most recent last, bounded): a
   * pending, unreviewed request not among them is most likely new, so its
   * record is created without reading first (one round trip saved; when
   * another instance created it already, the create's compare fails and
   * reads it).
   */
  readonly #seen = new Set<string>();
  /**
   * Whether not being in `#seen` means "no record": only once a reconcile
   * remembered every record, and while no id was forgotten since.
   */
  #seenComplete = false;
  /** Whether `#seen` forgot an id since the last reconcile began. */
  #seenForgot = false;
  /** The recorders of the requests being processed (flushed on shutdown). */
  readonly #recorders = new Set<Recorder>();
  /** Template kinds whose rendering failed once (logged once each). */
  readonly #templateFailures = new Set<string>();
  #stopped = false;
  /** Aborted when the shutdown grace is over: retries and due checks still running are cut. */
  readonly #graceOver = new AbortController();
  #graceTimer: Timer | undefined;
  /**
   * The latest rule listing (settled either way): new requests wait for it,
   * so a request seen right after INIT is routed by the rules, not the map.
   */
  #rulesLoaded: Promise<void> = Promise.resolve();

  constructor(deps: AppDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? REAL_CLOCK;
    this.#activity = deps.activity ?? new Activity();
    this.#traits = new UserTraits(deps.client, deps.log.getChild("users"), this.#clock);
    this.#random = deps.random ?? Math.random;
    this.#claimTtl = deps.claimTtlMs ?? CLAIM_TTL_MS;
  }

  /** Requests waiting for a retry. */
  get retryQueueDepth(): number {
    return this.#retries.size;
  }

  /** Writes at once every record still waiting to be written with others (shutdown). */
  async flushRecords(): Promise<void> {
    await Promise.allSettled([...this.#recorders].map((recorder) => recorder.flush()));
  }

  /**
   * Shutdown begins: no retry, due check or due check's next request starts
   * any more (the next start's reconcile and checks find that work); those
   * under way get the shutdown grace (`shutdownGraceMs`) to finish, then
   * their signal aborts. See {@linkcode drain}.
   */
  beginStop(): void {
    if (this.#stopped) return;
    // Records of emails sent but not written yet (their writes failed): one more try now, or
    // the next start would send those emails again. Their retries were due to write them.
    const unrecorded = [...this.#unrecorded.keys()];
    this.stop();
    this.#graceTimer = this.#clock.setTimeout(
      () => this.#graceOver.abort(new Error("Shutdown grace period over")),
      this.#deps.shutdownGraceMs ?? SHUTDOWN_GRACE_MS,
    );
    for (const id of unrecorded) {
      const end = this.#activity.begin();
      this.#reread(id).catch((error) => {
        this.#deps.log.with({ requestId: id }).error(
          "Emails sent for this request are not on record: {error}",
          { error },
        );
      }).finally(end);
    }
  }

  /**
   * Resolves once the retries and due checks under way ended (or the grace
   * is over): before the mailer and the client close under them.
   */
  async drain(): Promise<void> {
    const over = new Promise<void>((resolve) => {
      if (this.#graceOver.signal.aborted) resolve();
      this.#graceOver.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await Promise.race([this.#activity.idle(false), over]);
    this.#graceTimer?.cancel();
  }

  /** Cancels the pending retries and the reminder checks (shutdown). */
  stop(): void {
    this.#stopped = true;
    this.#reminderTimer?.cancel();
    this.#reminderTimer = undefined;
    for (const { timer, end } of this.#retries.values()) {
      timer.cancel();
      end();
    }
    this.#retries.clear();
  }

  /** Whether any rule sends work at its time (reminders, escalation, expiry warnings). */
  get #hasTimedWork(): boolean {
    const { reminders, escalation, accessExpiry } = this.#deps;
    return reminders !== undefined || escalation !== undefined || accessExpiry !== undefined;
  }

  /**
   * The one scheduler of timed work: looks for due reminders, escalations
   * and expiry warnings every `everyMs` until `signal` aborts or `stop()`
   * (no-op when none is configured); a check still running when the next is
   * due is not doubled, and finishes within `beginStop`'s grace.
   * A clock that jumped (suspend, downtime) gives one check, and each rule
   * sends only its latest due step.
   */
  startDueChecks(everyMs: number, signal: AbortSignal): void {
    if (!this.#hasTimedWork || this.#reminderTimer !== undefined || this.#stopped) return;
    // No check starts once `signal` aborts; one under way runs on (`beginStop` gives it the grace).
    signal.addEventListener("abort", () => {
      this.#reminderTimer?.cancel();
      this.#reminderTimer = undefined;
    }, { once: true });
    let running = false;
    this.#reminderTimer = this.#clock.setInterval(() => {
      if (running) return;
      running = true;
      const end = this.#activity.begin();
      // Stopping ends the checks (no new one, no next request); one under way gets the grace.
      const check = deadline(this.#graceOver.signal, REMINDER_CHECK_DEADLINE_MS, this.#clock);
      this.checkDue(check.signal)
        .catch((error) => this.#deps.log.warn("Checking for due work failed: {error}", { error }))
        .finally(() => {
          check.release();
          running = false;
          end();
        });
    }, everyMs);
  }

  /** Watcher hook: one PUT or DELETE event. */
  async handleEvent(event: Exclude<WatchEvent, { type: "init" }>, signal: AbortSignal) {
    this.#deps.metrics?.eventProcessed(event.type);
    if (event.type === "put" && event.kind === "access_request") {
      await this.process({ kind: "request", request: event.request }, signal);
    } else if (event.type === "delete" && event.kind === "access_request") {
      await this.process({ kind: "deleted", requestId: event.name }, signal);
    } else if (event.type === "put" && event.kind === "access_monitoring_rule") {
      this.#deps.rules?.rules.put(event.rule);
    } else if (event.type === "delete" && event.kind === "access_monitoring_rule") {
      this.#deps.rules?.rules.delete(event.name);
    }
  }

  /**
   * Watcher hook after every INIT: every request with work left, and every
   * unresolved record whose request disappeared while we were away.
   */
  async reconcile(signal: AbortSignal): Promise<KeyedTask[]> {
    const loading = this.#deps.rules?.reload(signal) ?? Promise.resolve();
    this.#rulesLoaded = loading.catch(() => {});
    await loading;
    // The records first, then the requests: a record listed whose request is not is one of a
    // request deleted since. Listed together, a request created (and its record written by
    // another replica) between the two answers would look deleted, and get an "expired" email.
    let stored = await this.#listRecords(signal);
    const requests = await this.#deps.client.listAccessRequests({}, signal);
    if (stored === undefined) {
      // Each listed request's own record instead (the Go plugin's way): the requests deleted
      // while no instance ran are not followed up then.
      stored = [];
      for (const request of requests) {
        const data = await this.#deps.client.getPluginData(request.id, signal);
        if (data !== undefined) stored.push({ requestId: request.id, data });
      }
    }
    const dataById = new Map(stored.map((s) => [s.requestId, decodePluginData(s.data)]));
    // Requests with a record are not new: their processing reads it first.
    this.#seenForgot = false;
    for (const requestId of dataById.keys()) this.#remember(requestId);
    if (!this.#seenForgot) this.#seenComplete = true;
    const tasks: KeyedTask[] = [];
    const seen = new Set<string>();
    const stale: string[] = [];
    const window = this.#catchUpWindow;
    for (const request of requests) {
      seen.add(request.id);
      const target: Target = { kind: "request", request };
      const data = dataById.get(request.id);
      const pendingNew = data === undefined && request.state === "PENDING";
      if (pendingNew && this.#beforeCatchUp(request)) {
        stale.push(request.id);
        continue;
      }
      if (!pendingNew && isEmptyPlan(this.#plan(target, data)) && !hasClaim(data)) continue;
      tasks.push({
        key: `access_request/${request.id}`,
        run: (s) => this.process(target, s, { listed: true }),
      });
    }
    for (const [requestId, data] of dataById) {
      if (seen.has(requestId)) continue;
      const target: Target = { kind: "deleted", requestId };
      if (isEmptyPlan(this.#plan(target, data))) continue;
      tasks.push({ key: `access_request/${requestId}`, run: (s) => this.process(target, s) });
    }
    if (stale.length > 0) {
      this.#deps.log.info(
        "Not emailing {count} pending request(s) created before the catch-up window " +
          "({windowH} h, delivery.catch_up_window) that no instance handled: {ids}",
        {
          count: stale.length,
          windowH: window / 3_600_000,
          ids: stale.slice(0, MAX_LOGGED_IDS).join(", ") +
            (stale.length > MAX_LOGGED_IDS ? ", …" : ""),
        },
      );
    }
    this.#deps.log.info("Reconciling {count} access request(s) after (re)connecting", {
      count: tasks.length,
    });
    return tasks;
  }

  /**
   * Every record of ours in one answer, or undefined when that answer would
   * be larger than the client takes (grpc-js: 4 MiB, some 10,000 records).
   */
  async #listRecords(signal: AbortSignal) {
    try {
      return await this.#deps.client.listPluginData(signal);
    } catch (error) {
      if (!isTeleportError(error, "too_large")) throw error;
      this.#deps.log.warn(
        "The plugin's records do not fit one answer ({error}): reading each listed request's " +
          "own; requests deleted while no instance ran get no email",
        { error },
      );
      return undefined;
    }
  }

  /** The former name of {@link startDueChecks}. */
  startReminders(everyMs: number, signal: AbortSignal): void {
    this.startDueChecks(everyMs, signal);
  }

  /**
   * Sends the timed work that is due: reminders and escalations of pending
   * requests nobody reviewed, warnings before granted access ends. Each
   * candidate goes through `process` (plugin data, plan, claim), so restarts
   * and replicas never send one twice.
   */
  async checkDue(signal: AbortSignal): Promise<void> {
    if (!this.#hasTimedWork || this.#stopped) return;
    const now = this.#clock.now();
    const requests = await this.#deps.client.listAccessRequests({}, signal);
    for (const request of requests) {
      if (this.#stopped) return;
      if (!this.#mayBeDue(request, now)) continue;
      await this.process({ kind: "request", request }, signal, { dueCheck: true });
    }
  }

  /** The former name of {@link checkDue}. */
  checkReminders(signal: AbortSignal): Promise<void> {
    return this.checkDue(signal);
  }

  get #catchUpWindow(): number {
    return this.#deps.catchUpWindowMs ?? DEFAULT_CATCH_UP_WINDOW_MS;
  }

  /**
   * Whether `request`, never emailed, is too old to be emailed from a listing
   * (`delivery.catch_up_window`; none at all when it is 0). A request without
   * a creation time cannot be told stale: it is caught up.
   */
  #beforeCatchUp(request: AccessRequest): boolean {
    const window = this.#catchUpWindow;
    const created = request.created?.getTime() ?? Infinity;
    return window <= 0 || created < this.#clock.now() - window;
  }

  /** Whether timed work may be due for `request` at `now` (the plan decides what is). */
  #mayBeDue(request: AccessRequest, now: number): boolean {
    const { reminders, escalation, accessExpiry } = this.#deps;
    if (request.state === "PENDING" && request.reviews.length === 0 && request.created) {
      const created = request.created.getTime();
      if (reminders && now >= created + reminders.afterMs) return true;
      const first = escalation?.levels[0];
      if (first && now >= created + first.afterMs) return true;
    }
    if (
      accessExpiry && request.state === "APPROVED" && request.accessExpires &&
      isRecipientAddress(request.user)
    ) {
      const ends = request.accessExpires.getTime();
      const earliest = ends - Math.max(...accessExpiry.warnBeforeMs);
      if (now < ends && now >= earliest) return true;
    }
    return false;
  }

  /**
   * Brings one request up to date; failures are logged and the request
   * retried later. `listed`: the request comes from a listing (a due check,
   * a reconcile) that may be minutes old by now; timed work (a reminder, an
   * escalation, an expiry warning) is only sent after reading the request
   * again, so that a request reviewed or resolved since gets none.
   * `dueCheck`: the listing is a due check's, which also holds the backlog
   * that the reconcile left alone as older than the catch-up window.
   */
  async process(
    target: Target,
    signal: AbortSignal,
    opts: { readonly listed?: boolean; readonly dueCheck?: boolean } = {},
  ): Promise<void> {
    const id = targetId(target);
    await this.#withLock(id, async () => {
      try {
        const retryAt = await this.#processOnce(
          target,
          signal,
          opts.listed === true || opts.dueCheck === true,
          opts.dueCheck === true,
        );
        if (retryAt === undefined) this.#retryAttempts.delete(id);
        else this.#scheduleRetry(id, Math.max(0, retryAt - this.#clock.now()));
      } catch (error) {
        if (isTeleportError(error, "too_large")) {
          this.#retryAttempts.delete(id);
          this.#deps.log.with({ requestId: id }).error(
            "The cluster refused this request's plugin data as too large; it is not retried " +
              "(emails already sent are not sent again by this process): {error}",
            { error },
          );
          return;
        }
        this.#retryLater(id, "Processing the request failed", error);
      }
    });
  }

  /** Schedules the next try of `id` after a failure, with the request's backoff. */
  #retryLater(id: string, what: string, error: unknown): void {
    if (this.#stopped) {
      this.#deps.log.with({ requestId: id }).error(
        `${what}: {error}; stopping, so the next start's reconcile tries it again`,
        { error },
      );
      return;
    }
    const attempt = this.#retryAttempts.get(id) ?? 0;
    this.#retryAttempts.set(id, attempt + 1);
    const log = this.#deps.log.with({ requestId: id });
    if (isTransientMailError(error)) {
      // The emails that went out are on record; the retry sends what is still missing.
      const delay = mailRetryDelay(
        attempt,
        error,
        this.#deps.mailRetryBackoff ?? SEND_RETRY_BACKOFF,
        this.#random,
      );
      log.warn("Emails not sent yet (try {attempt}): {error}; retrying in {delay} ms", {
        attempt: attempt + 1,
        error,
        delay,
      });
      this.#scheduleRetry(id, delay);
      return;
    }
    const delay = backoffDelay(
      attempt,
      this.#deps.retryBackoff ?? REQUEST_RETRY_BACKOFF,
      this.#random,
    );
    log.error(`${what}: {error}; retrying in {delay} ms`, { error, delay });
    this.#scheduleRetry(id, delay);
  }

  /** Returns when to look again (another instance holds the claim), or undefined when done. */
  async #processOnce(
    target: Target,
    signal: AbortSignal,
    listed: boolean,
    dueCheck: boolean,
  ): Promise<number | undefined> {
    const { client } = this.#deps;
    const id = targetId(target);
    const log = this.#deps.log.with({ requestId: id });
    const fresh = target.kind === "request" && target.request.state === "PENDING" &&
      target.request.reviews.length === 0 && !this.#seen.has(id) && !this.#unrecorded.has(id);
    // A due check's listing also holds the backlog that the reconcile left alone as too old: it
    // gets no first email from there either. Its record is read (one of ours may exist) unless
    // `#seen` is known complete; what has none is not remembered, so the next check skips it.
    const tooOld = dueCheck && target.kind === "request" && this.#beforeCatchUp(target.request);
    if (tooOld && fresh && this.#seenComplete) return undefined;
    let raw = fresh && !tooOld ? undefined : await client.getPluginData(id, signal);
    if (tooOld && raw === undefined) return undefined;
    this.#remember(id);
    const unrecorded = this.#unrecorded.get(id) ?? [];
    const withUnrecorded = (d: EmailPluginData) => unrecorded.reduce((acc, u) => u(acc), d);
    let data = raw === undefined ? undefined : withUnrecorded(decodePluginData(raw));
    let claimedAlready = false;

    if (data === undefined) {
      if (target.kind !== "request" || target.request.state !== "PENDING") {
        log.debug("No email was sent for this request; nothing to follow up");
        return undefined;
      }
      const created = await this.#create(target.request, log, signal);
      if (created.data === undefined) return undefined;
      data = created.data;
      raw = created.raw;
      // Whoever created the record holds its claim.
      claimedAlready = created.changed;
    }

    let plan = this.#plan(target, data);
    // A record that existed (no claim of ours taken yet): its timed work, from an old listing,
    // waits for a fresh copy of the request.
    if (listed && !claimedAlready && target.kind === "request" && hasTimedWork(plan)) {
      const [current] = await client.listAccessRequests({ id }, signal);
      // Gone since: its DELETE event (or the next reconcile) follows it up.
      if (current === undefined) return undefined;
      target = { kind: "request", request: current };
      plan = this.#plan(target, data);
    }
    // Emails sent earlier but not on record still need their write, even with nothing to send.
    if (
      isEmptyPlan(plan) && unrecorded.length === 0 && readClaim(data)?.owner !== this.#deps.owner
    ) return undefined;

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
      data = withUnrecorded(claimed.data);
      raw = claimed.raw;
      plan = this.#plan(target, data);
    }

    const recorder = new Recorder({
      write: (update, known, s) => this.#writeUnderClaim(id, update, known, s, false),
      release: (update, known, s) => this.#writeUnderClaim(id, update, known, s, true),
      clock: this.#clock,
      log,
      signal,
      raw,
    });
    this.#recorders.add(recorder);
    // What went out earlier but is not on record yet goes with the first write.
    this.#unrecorded.delete(id);
    const records = unrecorded.map((update) => recorder.record(update));
    const ctx: RequestContext = {
      id,
      target,
      log,
      recorder,
      facts: factsOf(target, data),
      clusterName: this.#deps.cluster.clusterName,
      link: this.#link(id),
      resolution: resolutionOf(target),
      signal,
      records,
    };
    const renew = this.#clock.setInterval(() => recorder.renew(), this.#claimTtl / 3);
    const errors: unknown[] = [];
    const settle = async (work: Promise<void>[]) => {
      for (const result of await Promise.allSettled(work)) {
        if (result.status === "rejected") errors.push(result.reason);
      }
    };
    try {
      const opening: Promise<void>[] = [];
      if (target.kind === "request") {
        const { request } = target;
        const facts = { clusterName: ctx.clusterName, request, link: ctx.link };
        if (plan.newThreads.length > 0) {
          const content = newRequestMessage({ ...facts, notEmailed: notEmailedCount(data) });
          for (const to of plan.newThreads) {
            opening.push(this.#openThread(ctx, "new request", to, content, addThread));
          }
        }
        if (plan.requesterNew !== undefined) {
          const content = requesterReceivedMessage(facts);
          opening.push(
            this.#openThread(ctx, "requester", plan.requesterNew, content, setRequesterThread),
          );
        }
        if (plan.escalation) opening.push(this.#escalate(ctx, request, data, plan.escalation));
      }
      if (opening.length > 0) {
        await settle(opening);
        // Threads opened now may owe replies (reviews that already exist).
        plan = this.#plan(target, recorder.view(data));
      }
      const replying = plan.replies.map(({ thread, items }) =>
        this.#replyInThread(ctx, thread, items, "reviewer")
      );
      if (plan.requesterReplies) {
        const { thread, items } = plan.requesterReplies;
        replying.push(this.#replyInThread(ctx, thread, items, "requester"));
      }
      for (const { thread, items } of plan.escalationReplies ?? []) {
        replying.push(this.#replyInThread(ctx, thread, items, "escalation"));
      }
      if (plan.reminders && target.kind === "request") {
        const content = reminderMessage({
          clusterName: ctx.clusterName,
          request: target.request,
          link: ctx.link,
        });
        for (const { thread, count } of plan.reminders) {
          replying.push((async () => {
            await this.#sendOne(ctx, "reminder", thread.email, content, thread.messageId);
            this.#record(ctx, (d) => recordReminder(d, thread.email, count));
          })());
        }
      }
      await settle(replying);
      // After the replies: in the requester's thread the warning follows the resolution.
      if (plan.expiryWarning && target.kind === "request" && errors.length === 0) {
        await settle([this.#warnExpiry(ctx, target.request, plan.expiryWarning)]);
      }
      const { resolution } = ctx;
      if (plan.markResolved && resolution) {
        this.#record(ctx, (d) => markResolved(d, resolution));
      }
    } finally {
      renew.cancel();
      // The last records and the claim's release: one write.
      await recorder.release();
      this.#recorders.delete(recorder);
      await settle(records);
      const left = recorder.unrecorded();
      if (left.length > 0) this.#unrecorded.set(id, left);
    }
    if (errors.length > 0) throw errors[0];
    return undefined;
  }

  /** Queues a record of what was just sent; its write is awaited at the end of the request. */
  #record(ctx: RequestContext, update: RecordUpdate): void {
    ctx.records.push(ctx.recorder.record(update));
  }

  /**
   * Opens the escalation threads of a due level; once every recipient got
   * theirs (or was refused for good), records the level as sent.
   */
  async #escalate(
    ctx: RequestContext,
    request: AccessRequest,
    data: EmailPluginData,
    escalation: NonNullable<Plan["escalation"]>,
  ): Promise<void> {
    const failed = new Set(failedRecipients(data));
    const notified = [
      ...new Set([
        ...data.emailThreads.map((t) => t.email),
        ...plannedRecipients(data).filter((r) => !failed.has(r)),
        ...escalationThreads(data).map((t) => t.email),
      ]),
    ];
    const now = this.#clock.now();
    const content = escalationMessage({
      clusterName: ctx.clusterName,
      request,
      link: ctx.link,
      notEmailed: notEmailedCount(data),
      waitedMs: now - (request.created?.getTime() ?? now),
      notified,
    });
    ctx.log.info("Escalating this request (level {level}) to {count} recipient(s)", {
      level: escalation.level,
      count: escalation.newThreads.length,
    });
    const results = await Promise.allSettled(
      escalation.newThreads.map((to) =>
        this.#openThread(ctx, "escalation", to, content, addEscalationThread, addEscalationFailed)
      ),
    );
    const rejected = results.find((r) => r.status === "rejected");
    if (rejected) throw rejected.reason;
    this.#record(ctx, (d) => recordEscalationLevel(d, escalation.level, escalation.afterMs));
  }

  /** Sends the warning that granted access ends soon and records it (sent or refused). */
  async #warnExpiry(
    ctx: RequestContext,
    request: AccessRequest,
    warning: ExpiryWarning,
  ): Promise<void> {
    if (ctx.recorder.error !== undefined) throw ctx.recorder.error;
    const content = accessExpiryMessage({
      clusterName: ctx.clusterName,
      request,
      link: ctx.link,
      accessExpires: new Date(warning.accessExpires),
      now: this.#clock.now(),
    });
    const sent = await this.#sendOne(
      ctx,
      "access_expiry",
      warning.to,
      content,
      warning.thread?.messageId || undefined,
    );
    if (sent !== undefined && warning.thread === undefined) {
      const thread: EmailThread = {
        email: warning.to,
        timestamp: formatThreadTimestamp(new Date(this.#clock.now())),
        messageId: sent.messageId,
      };
      this.#record(ctx, (d) => setExpiryThread(d, thread));
    }
    // Refused for good counts as done: a warning is never retried after a refusal.
    this.#record(ctx, (d) => recordExpiryWarned(d, warning.warnBeforeMs));
  }

  /** Sends the email that opens a thread and records the thread (or the refusal). */
  async #openThread(
    ctx: RequestContext,
    kind: EmailKind,
    to: string,
    content: MessageContent,
    record: (d: EmailPluginData, thread: EmailThread) => EmailPluginData,
    refused: (d: EmailPluginData, to: string) => EmailPluginData = addFailed,
  ): Promise<void> {
    const sent = await this.#sendOne(ctx, kind, to, content, undefined);
    if (sent === undefined) {
      this.#record(ctx, (d) => refused(d, to));
      return;
    }
    const thread: EmailThread = {
      email: to,
      timestamp: formatThreadTimestamp(new Date(this.#clock.now())),
      messageId: sent.messageId,
    };
    this.#record(ctx, (d) => record(d, thread));
  }

  #plan(target: Target, data: EmailPluginData | undefined) {
    return planWork(target, data, {
      now: this.#clock.now(),
      reminders: this.#deps.reminders,
      escalation: this.#deps.escalation,
      accessExpiry: this.#deps.accessExpiry,
    });
  }

  /**
   * Creates the record for a new pending request, claimed by us. `changed`
   * is false when another instance created it first.
   */
  async #create(request: AccessRequest, log: Logger, signal: AbortSignal) {
    await this.#rulesLoaded;
    const rules = this.#deps.rules?.rules;
    // The requester's traits, for rules on `user.traits`: read only when there are rules.
    const traits = rules && rules.size > 0
      ? await this.#traits.get(request.user, signal)
      : undefined;
    const match = rules?.recipientsFor(request, traits);
    const routed = routeRecipients(request, match, this.#deps.roleToRecipients);
    const notAddresses: string[] = [];
    for (const note of routed.notes) {
      if (note.kind === "not_an_address") notAddresses.push(note.entry);
      else logRoutingNote(log, note);
    }
    if (notAddresses.length > 0) {
      // One line, however many (a request may suggest thousands), each value quoted: a name
      // such as `x requestId=forged` cannot pass for a field of the line.
      const shown = notAddresses.slice(0, MAX_LOGGED_IDS).map((e) => truncate(e, 100));
      log.warn("Not emailing {count} recipient(s), not plain email addresses: {recipients}", {
        count: notAddresses.length,
        recipients: JSON.stringify(shown) + (notAddresses.length > shown.length ? " …" : ""),
      });
    }
    const max = this.#deps.maxRecipients ?? DEFAULT_MAX_RECIPIENTS;
    const recipients = routed.recipients.slice(0, max);
    if (routed.recipients.length > max) {
      log.warn(
        "This request names {count} recipients: only the first {max} are emailed " +
          "(delivery.max_recipients); not emailed: {skipped}",
        {
          count: routed.recipients.length,
          max,
          skipped: routed.recipients.slice(max, max + 10).join(", ") +
            (routed.recipients.length > max + 10 ? ", …" : ""),
        },
      );
    }
    const writing = modifyPluginData(this.#deps.client, request.id, (current) => {
      if (current !== undefined) return undefined;
      const fresh: EmailPluginData = {
        ...EMPTY_PLUGIN_DATA,
        user: request.user,
        roles: request.roles,
        requestReason: truncate(request.requestReason, MAX_STORED_REASON_CHARS),
      };
      let next = setNotEmailedCount(
        setPlannedRecipients(fresh, recipients),
        routed.recipients.length - recipients.length,
      );
      if (this.#deps.notifyRequester && isRecipientAddress(request.user)) {
        next = setPlannedRequester(next, request.user);
      }
      return setClaim(next, this.#newClaim());
    }, this.#casOptions(signal, {}));
    // Asked once the write is under way, so that it does not wait for the mailer; the
    // transactions first, so that their commands need not wait for the composing either.
    const forgetEnvelopes = this.#openEnvelopes(request, recipients);
    const forgetContent = this.#prepareOpening(
      request,
      recipients.length,
      routed.recipients.length - recipients.length,
    );
    const forget = () => {
      forgetContent();
      forgetEnvelopes();
    };
    try {
      const created = await writing;
      // Another instance created the record first: it sends these emails, not us.
      if (!created.changed) forget();
      return created;
    } catch (error) {
      forget();
      throw error;
    }
  }

  /**
   * Writing a new request's record takes a round trip to the cluster: the
   * mailer prepares the emails that open its threads meanwhile (the same
   * built-in content as `#processOnce` sends, when no template replaces it).
   */
  #prepareOpening(request: AccessRequest, recipients: number, notEmailed: number): () => void {
    const forgets: (() => void)[] = [];
    const forget = () => {
      for (const f of forgets) {
        try {
          f();
        } catch {
          // As below: a head start only.
        }
      }
    };
    if (this.#deps.prepare === undefined) return forget;
    const { templates } = this.#deps;
    try {
      const facts = {
        clusterName: this.#deps.cluster.clusterName,
        request,
        link: this.#link(request.id),
      };
      if (recipients > 0 && !templates?.has("new_request")) {
        forgets.push(this.#deps.prepare(newRequestMessage({ ...facts, notEmailed })));
      }
      if (
        this.#deps.notifyRequester && isRecipientAddress(request.user) &&
        !templates?.has("requester")
      ) {
        forgets.push(this.#deps.prepare(requesterReceivedMessage(facts)));
      }
    } catch {
      // Only a head start: the emails are composed when sent all the same.
    }
    return forget;
  }

  /** `openEnvelopes` for the opening emails of a new request (best effort, like `prepare`). */
  #openEnvelopes(request: AccessRequest, recipients: readonly string[]): () => void {
    const open = this.#deps.openEnvelopes;
    if (open === undefined) return () => {};
    const to = this.#deps.notifyRequester && isRecipientAddress(request.user)
      ? [...recipients, request.user]
      : recipients;
    try {
      return open(to);
    } catch {
      return () => {};
    }
  }

  #remember(id: string): void {
    this.#seen.delete(id);
    this.#seen.add(id);
    if (this.#seen.size > MAX_SEEN_REQUESTS) {
      this.#seen.delete(this.#seen.keys().next().value!);
      this.#seenForgot = true;
      this.#seenComplete = false;
    }
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
    ctx: RequestContext,
    thread: EmailThread,
    items: readonly Reply[],
    role: ThreadRole,
  ) {
    const { clusterName, link, resolution, facts } = ctx;
    const latest = ctx.recorder.view(ctx.recorder.latest ?? EMPTY_PLUGIN_DATA);
    let progress =
      (role === "requester"
        ? requesterProgress(latest)
        : role === "escalation"
        ? escalationProgress(latest).get(thread.email)
        : threadProgress(latest).get(thread.email)) ?? { reviews: 0, resolved: false };
    for (const item of items) {
      // A record that could not be written (the claim lost, the record refused): stop here.
      if (ctx.recorder.error !== undefined) throw ctx.recorder.error;
      const content = item.kind === "review"
        ? reviewMessage({ clusterName, requestId: facts.id, review: item.review, link })
        : resolutionMessage({ clusterName, request: facts, link, resolution: resolution! });
      await this.#sendOne(
        ctx,
        item.kind,
        thread.email,
        content,
        thread.messageId,
        item.kind === "review" ? item.review : undefined,
      );
      progress = item.kind === "review"
        ? { reviews: Math.max(progress.reviews, item.index + 1), resolved: progress.resolved }
        : { reviews: progress.reviews, resolved: true };
      const p = progress;
      this.#record(
        ctx,
        (d) =>
          role === "requester"
            ? recordRequesterReplies(d, p)
            : role === "escalation"
            ? recordEscalationReplies(d, thread.email, p)
            : recordReplies(d, thread.email, p, resolution ?? { tag: "EXPIRED", reason: "" }),
      );
    }
  }

  /**
   * Sends one email (a reply when `inReplyTo` is a message id). Resolves
   * with what was sent, or `undefined` when the email was refused for good
   * (logged; not retried). Rejects for anything that may work later.
   */
  async #sendOne(
    ctx: RequestContext,
    kind: EmailKind,
    to: string,
    builtIn: MessageContent,
    inReplyTo: string | undefined,
    review?: AccessReview,
  ): Promise<SentEmail | undefined> {
    const { log } = ctx;
    const content = this.#templated(ctx, kind, to, builtIn, review);
    // A retry of an email that failed for now is the same email to the mailer (its Message-ID).
    const key = `${ctx.id}\n${kind}\n${to}\n${inReplyTo ?? ""}`;
    const earlier = this.#failedForNow.get(key);
    this.#failedForNow.delete(key);
    const email: OutgoingEmail = earlier !== undefined && earlier.subject === content.subject &&
        earlier.text === content.text && earlier.html === content.html
      ? earlier
      : {
        to,
        subject: content.subject,
        text: content.text,
        html: content.html,
        ...(inReplyTo ? { inReplyTo } : {}),
      };
    const metric = kind === "new request" ? "new" : kind;
    const started = performance.now();
    try {
      const sent = await this.#deps.send(email, ctx.signal);
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
      this.#failedForNow.set(key, email);
      // Bounded: the oldest goes (its retry then gets a new Message-ID).
      if (this.#failedForNow.size > MAX_FAILED_FOR_NOW) {
        this.#failedForNow.delete(this.#failedForNow.keys().next().value!);
      }
      throw error;
    }
  }

  /**
   * `builtIn` as the operator's templates for `kind` say, if they have any.
   * A template that fails here (validation tried it on sample data, so only
   * unexpected data can do that) costs no email: the built-in one goes out
   * and the failure is logged once per kind.
   */
  #templated(
    ctx: RequestContext,
    kind: EmailKind,
    to: string,
    builtIn: MessageContent,
    review: AccessReview | undefined,
  ): MessageContent {
    const templates = this.#deps.templates;
    const name = kind.replaceAll(" ", "_");
    if (templates === undefined || !templates.has(name)) return builtIn;
    const { target, resolution } = ctx;
    try {
      return templates.render(name, {
        clusterName: ctx.clusterName,
        request: ctx.facts,
        reviews: target.kind === "request" ? target.request.reviews : [],
        link: ctx.link,
        status: kind === "resolution" && resolution
          ? resolution.tag
          : target.kind === "request"
          ? target.request.state
          : "PENDING",
        resolutionReason: resolution?.reason,
        review,
        notEmailed: kind === "new request" && ctx.recorder.latest
          ? notEmailedCount(ctx.recorder.latest)
          : 0,
        recipient: to,
      }, builtIn);
    } catch (error) {
      if (!this.#templateFailures.has(name)) {
        this.#templateFailures.add(name);
        ctx.log.error(
          "The {kind} template failed, the built-in text is sent instead (logged once): {error}",
          { kind, error },
        );
      }
      return builtIn;
    }
  }

  #link(requestId: string): string | undefined {
    const { cluster } = this.#deps;
    if (!cluster.advancedAccessWorkflows) return undefined;
    return requestWebLink(cluster.proxyPublicAddr, requestId);
  }

  #claimFree(data: EmailPluginData): boolean {
    if (claimFree(data, this.#deps.owner, this.#clock.now())) return true;
    const holder = readClaim(data);
    return holder !== undefined && (this.#deps.isOwnerGone?.(holder.owner) ?? false);
  }

  #newClaim(): Claim {
    return { owner: this.#deps.owner, expiresAt: this.#clock.now() + this.#claimTtl };
  }

  /**
   * Applies `update` and renews our claim (or, with `release`, gives it up);
   * fails if another instance took the claim over.
   */
  #writeUnderClaim(
    requestId: string,
    update: RecordUpdate | undefined,
    known: PluginData | undefined,
    signal: AbortSignal,
    release: boolean,
  ) {
    return modifyPluginData(this.#deps.client, requestId, (current) => {
      if (current === undefined || readClaim(current)?.owner !== this.#deps.owner) {
        if (release && update === undefined) return undefined;
        throw new LostClaimError(requestId);
      }
      const next = update ? update(current) : current;
      return setClaim(next, release ? undefined : this.#newClaim());
    }, this.#casOptions(signal, known));
  }

  #scheduleRetry(requestId: string, delayMs: number) {
    if (this.#stopped || this.#retries.has(requestId)) return;
    const endWait = this.#activity.begin("timer");
    const timer = this.#clock.setTimeout(() => {
      const end = this.#activity.begin();
      endWait();
      this.#retries.delete(requestId);
      this.#deps.metrics?.setRetryQueueDepth(this.#retries.size);
      this.#retry(requestId).catch((error) => {
        this.#deps.log.with({ requestId }).error("Retry failed: {error}", { error });
      }).finally(end);
    }, delayMs);
    this.#retries.set(requestId, { timer, end: endWait });
    this.#deps.metrics?.setRetryQueueDepth(this.#retries.size);
  }

  async #retry(requestId: string) {
    if (this.#stopped) return;
    await this.#reread(requestId);
  }

  /** Reads `requestId` again and processes it (or its deletion); a failed read is retried. */
  async #reread(requestId: string) {
    const retry = deadline(this.#graceOver.signal, RETRY_DEADLINE_MS, this.#clock);
    try {
      const signal = retry.signal;
      let request: AccessRequest | undefined;
      try {
        [request] = await this.#deps.client.listAccessRequests({ id: requestId }, signal);
      } catch (error) {
        // Nothing else would bring the request back (its event has passed): try again later.
        if (this.#stopped) throw error;
        this.#retryLater(requestId, "Reading the request again failed", error);
        return;
      }
      const target: Target = request
        ? { kind: "request", request }
        : { kind: "deleted", requestId };
      await this.process(target, signal);
    } finally {
      retry.release();
    }
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

function logRoutingNote(log: Logger, note: RoutingNote): void {
  switch (note.kind) {
    case "from_rules":
      log.info("Recipients from access monitoring rule(s) {rules}", { rules: note.rules });
      break;
    case "not_an_address":
      break; // gathered into one line by the caller
    case "rules_name_nobody":
      log.warn(
        "Access monitoring rule(s) {rules} name no email address: recipients come from role_to_recipients",
        { rules: note.rules },
      );
      break;
    case "no_recipient":
      log.warn("No recipient for this request: check role_to_recipients");
      break;
  }
}

/** `text` cut to `max` UTF-16 units (never inside a surrogate pair), with "…" when longer. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max - 1);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut + "…";
}

/** A mail failure that may pass (the mailer's `MailError` with `transient`). */
function isTransientMailError(error: unknown): error is MailError {
  const e = error as Partial<MailError> | undefined;
  return e?.name === "MailError" && e.transient === true;
}

/** Whether `plan` has work that is due by time rather than by a change of the request. */
function hasTimedWork(plan: Plan): boolean {
  return (plan.reminders?.length ?? 0) > 0 || plan.escalation !== undefined ||
    plan.expiryWarning !== undefined;
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
