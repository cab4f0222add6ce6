/**
 * The progress recorder of one request while we hold its claim: it
 * serialises the request's plugin-data writes (sends run in parallel, their
 * records one after another), applies updates that arrive during a write
 * together in the next one, and keeps the latest record. A write the cluster
 * could not take for a passing reason is tried again for a while: the email
 * it records is already out, and an unrecorded email is sent again by the
 * request's next try.
 */
import type { Logger } from "@logtape/logtape";
import type { Clock } from "../lib/clock.ts";
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
  /** Gives the claim up. */
  release(known: PluginData | undefined, signal: AbortSignal): Promise<unknown>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** The stored map as read when the claim was taken. */
  readonly raw: PluginData | undefined;
}

export class Recorder {
  readonly #deps: RecorderDeps;
  #queue: { update: RecordUpdate; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #writing: Promise<void> | undefined;
  #raw: PluginData | undefined;
  /** The record as last written; undefined before the first write. */
  latest: EmailPluginData | undefined;

  constructor(deps: RecorderDeps) {
    this.#deps = deps;
    this.#raw = deps.raw;
  }

  /**
   * Records `update`. Updates that arrive while a write is under way are
   * applied together in the next write (one round trip for several sends).
   */
  record(update: RecordUpdate): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ update, resolve, reject });
      this.#writing ??= this.#drain().finally(() => (this.#writing = undefined));
    });
  }

  /** Renews the claim (an empty update still moves its expiry). */
  renew(): void {
    this.record((d) => d).catch(() => {});
  }

  /** Waits for the writes under way, then gives the claim up (it expires by itself if that fails). */
  async release(): Promise<void> {
    while (this.#writing) await this.#writing;
    try {
      await this.#deps.release(this.#raw, this.#deps.signal);
    } catch {
      // The claim expires by itself.
    }
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

  async #write(update: RecordUpdate): Promise<void> {
    const { clock, log, signal } = this.#deps;
    const started = clock.now();
    for (let attempt = 0;; attempt++) {
      try {
        const result = await this.#deps.write(update, this.#raw, signal);
        this.latest = result.data;
        this.#raw = result.raw;
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
