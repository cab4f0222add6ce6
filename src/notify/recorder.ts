/**
 * The progress recorder of one request while we hold its claim: it
 * serialises the request's plugin-data writes (sends run in parallel, their
 * records one after another) and keeps the latest record. Records are
 * written in groups: a record waits (at most `COALESCE_MS`) for the other
 * sends of the request that are under way, and the last group carries the
 * claim's release, so a new request with three recipients costs two writes
 * (the create, which is the claim, and one record) instead of five. A write
 * the cluster could not take for a passing reason is tried again for a
 * while: the email it records is already out, and an unrecorded email is
 * sent again by the request's next try (see `unrecorded()`).
 */
import type { Logger } from "@logtape/logtape";
import type { Clock, Timer } from "../lib/clock.ts";
import { backoffDelay, type BackoffOptions } from "../lib/backoff.ts";
import { isTeleportError, type PluginData } from "../teleport/types.ts";
import type { ModifyPluginDataResult } from "./cas.ts";
import type { EmailPluginData } from "./plugin_data.ts";

/**
 * Retries of a progress record the cluster could not take (auth server
 * restarting): 50 ms doubling up to 2 s. The email is already out; giving
 * up would send it again on the request's next try.
 */
export const RECORD_RETRY_BACKOFF: BackoffOptions = { baseMs: 50, capMs: 2_000 };
/** How long a progress record is retried before the request is left to its own retry. */
export const RECORD_RETRY_MAX_MS = 2 * 60_000;
/**
 * Longest a record waits to be written with others: the emails of one
 * request sent at once finish within a few ms of each other; this bounds how
 * much longer an email stays unrecorded (the at-least-once window).
 */
export const COALESCE_MS = 100;

export type RecordUpdate = (d: EmailPluginData) => EmailPluginData;

export interface RecorderDeps {
  /**
   * Writes `update` under our claim (renewing it), starting from `known`
   * (the stored map as we last wrote it: saves a read per write).
   */
  write(
    update: RecordUpdate,
    known: PluginData | undefined,
    signal: AbortSignal,
  ): Promise<ModifyPluginDataResult>;
  /** Applies `update` (maybe none) and gives the claim up, in one write. */
  release(
    update: RecordUpdate | undefined,
    known: PluginData | undefined,
    signal: AbortSignal,
  ): Promise<ModifyPluginDataResult>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** The stored map as read when the claim was taken. */
  readonly raw: PluginData | undefined;
}

interface Queued {
  readonly update: RecordUpdate;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class Recorder {
  readonly #deps: RecorderDeps;
  #queue: Queued[] = [];
  #writing: Promise<void> | undefined;
  #timer: Timer | undefined;
  #raw: PluginData | undefined;
  /** Updates whose write failed: their emails are out but not on record. */
  #failed: RecordUpdate[] = [];
  #error: unknown;
  /** The record as last written; undefined before the first write. */
  latest: EmailPluginData | undefined;

  constructor(deps: RecorderDeps) {
    this.#deps = deps;
    this.#raw = deps.raw;
  }

  /** The first write that failed (then no further email should go out for this request). */
  get error(): unknown {
    return this.#error;
  }

  /** `data` with every record queued, failed or written applied: what has really been sent. */
  view(data: EmailPluginData): EmailPluginData {
    const base = this.latest ?? data;
    return [...this.#failed, ...this.#queue.map((q) => q.update)].reduce((d, u) => u(d), base);
  }

  /** Records of emails that went out but could not be written (to be kept in memory). */
  unrecorded(): RecordUpdate[] {
    return [...this.#failed, ...this.#queue.map((q) => q.update)];
  }

  /**
   * Queues `update`. It is written with the records queued with it: by
   * `flush`/`release`, or `COALESCE_MS` after it was queued. Resolves once
   * written.
   */
  record(update: RecordUpdate): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      this.#queue.push({ update, resolve, reject });
      this.#timer ??= this.#deps.clock.setTimeout(() => void this.flush(), COALESCE_MS);
    });
    // Its caller awaits it at the end of the request, and its write may fail well before (a
    // coalesced write, while another send of the request still runs): a failure is not left
    // unhandled meanwhile, which would end the process. It shows in `error` and `unrecorded()`.
    written.catch(() => {});
    return written;
  }

  /** Writes what is queued now (after the write under way). */
  async flush(): Promise<void> {
    await this.#drain(false);
  }

  /** Renews the claim (an empty update still moves its expiry). */
  renew(): void {
    this.record((d) => d).catch(() => {});
    void this.flush();
  }

  /**
   * Writes what is queued together with the claim's release (one write);
   * if that fails the claim expires by itself, and the queued records'
   * promises reject.
   */
  async release(): Promise<void> {
    await this.#drain(true);
  }

  async #drain(release: boolean): Promise<void> {
    this.#timer?.cancel();
    this.#timer = undefined;
    while (this.#writing) await this.#writing;
    const batch = this.#queue.splice(0);
    if (batch.length === 0 && !release) return;
    const update = batch.length === 0
      ? undefined
      : (d: EmailPluginData) => batch.reduce((acc, item) => item.update(acc), d);
    const writing = this.#write(update, release);
    this.#writing = writing.then(() => {}, () => {}).finally(() => (this.#writing = undefined));
    try {
      await writing;
      for (const item of batch) item.resolve();
    } catch (error) {
      this.#error ??= error;
      this.#failed.push(...batch.map((item) => item.update));
      for (const item of batch) item.reject(error);
      if (release && batch.length === 0) return; // an unreleased claim expires by itself
    }
  }

  async #write(update: RecordUpdate | undefined, release: boolean): Promise<void> {
    const { clock, log, signal } = this.#deps;
    const started = clock.now();
    for (let attempt = 0;; attempt++) {
      try {
        const result = release
          ? await this.#deps.release(update, this.#raw, signal)
          : await this.#deps.write(update ?? ((d) => d), this.#raw, signal);
        this.latest = result.data ?? this.latest;
        this.#raw = result.raw ?? this.#raw;
        if (attempt > 0) log.info("Progress recorded after {attempt} retries", { attempt });
        return;
      } catch (error) {
        const late = clock.now() - started >= RECORD_RETRY_MAX_MS;
        if (!isTeleportError(error, "transient") || signal.aborted || late) throw error;
        if (attempt === 0) log.warn("Cannot record progress yet: {error}; retrying", { error });
        await clock.sleep(backoffDelay(attempt, RECORD_RETRY_BACKOFF), signal);
      }
    }
  }
}
