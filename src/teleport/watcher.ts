/**
 * The watcher job: keeps one watch stream open, waits for INIT, hands events
 * to the handler through a keyed queue (one request's events in arrival
 * order, different requests in parallel, a bounded number in flight), runs
 * the reconcile hook after every INIT, and reconnects with jittered backoff
 * when the stream breaks. It never gives up while not stopped.
 */
import type { Logger } from "@logtape/logtape";
import {
  isTeleportError,
  StreamMovedError,
  type TeleportClient,
  type WatchEvent,
} from "./types.ts";
import { backoffDelay, type BackoffOptions } from "../lib/backoff.ts";
import { type Clock, REAL_CLOCK, type Timer } from "../lib/clock.ts";
import { Activity } from "../lib/activity.ts";
import { KeyedQueue, type KeyedTask } from "../lib/keyed_queue.ts";
import { EventMarks } from "./_event_marks.ts";
import { deadline } from "../lib/deadline.ts";

/** How long the first event (INIT) may take after opening the stream. */
export const INIT_TIMEOUT_MS = 15_000;
/** Reconnect backoff: from 20 ms up to 5 s, reset after a healthy stream (one that sent INIT). */
export const RECONNECT_BACKOFF: BackoffOptions = { baseMs: 20, capMs: 5_000 };
/** Events queued or being handled at once; the stream is not read further until there is room. */
export const MAX_IN_FLIGHT = 128;
/** Deadline of one handler run (covers the email retries of one event). */
export const HANDLER_DEADLINE_MS = 10 * 60_000;
/** On stop, how long in-flight handlers may run before they are aborted. */
export const SHUTDOWN_GRACE_MS = 15_000;
/** Retries of a failed reconcile while the stream stays up: 0.5 s doubling up to 30 s. */
export const RECONCILE_RETRY_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000 };

export type { KeyedTask } from "../lib/keyed_queue.ts";

export interface WatcherOptions {
  readonly client: Pick<TeleportClient, "watch">;
  /** The kinds to watch; a function is asked again at every (re)connect. */
  readonly kinds: readonly string[] | (() => readonly string[]);
  /** Handles one PUT or DELETE event. */
  handleEvent(event: Exclude<WatchEvent, { type: "init" }>, signal: AbortSignal): Promise<void>;
  /**
   * Called after every INIT (startup and each reconnect); returns the work
   * that brings every request up to date. A task is skipped when an event for
   * its key arrived after the reconcile started (the event is newer).
   */
  reconcile(
    init: Extract<WatchEvent, { type: "init" }>,
    signal: AbortSignal,
  ): Promise<readonly KeyedTask[]>;
  /** Called after each INIT; `first` is true once. */
  onInit?(init: Extract<WatchEvent, { type: "init" }>, first: boolean): void;
  /** Called when a stream ends or fails, with why. */
  onDisconnect?(error: unknown): void;
  /**
   * Asked after `onDisconnect`: true ends the watcher (after the shutdown
   * grace) with that error instead of reconnecting (`TELEPORT_PLUGIN_FAIL_FAST`).
   */
  giveUp?(error: unknown): boolean;
  readonly log: Logger;
  /** Counts the events being handled and the reconciles under way. */
  readonly activity?: Activity;
  /**
   * Timers (INIT timeout, reconnect backoff, shutdown grace, handler deadlines); default the
   * real clock.
   */
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly initTimeoutMs?: number;
  readonly handlerDeadlineMs?: number;
  readonly shutdownGraceMs?: number;
  readonly maxInFlight?: number;
  /** What is kept of events for the reconciles (tests look at its size); default a new one. */
  readonly marks?: EventMarks;
}

/** The key that orders an event: the request id (or the rule name for rules). */
export function eventKey(event: Exclude<WatchEvent, { type: "init" }>): string {
  if (event.type === "delete") return `${event.kind}/${event.name}`;
  if (event.kind === "access_request") return `access_request/${event.request.id}`;
  return `access_monitoring_rule/${event.rule.name}`;
}

class InitTimeoutError extends Error {
  constructor(ms: number) {
    super(`No INIT event within ${ms} ms of opening the watch stream`);
    this.name = "InitTimeoutError";
  }
}

/**
 * Runs until `signal` aborts; then stops reading, lets in-flight handlers
 * finish for up to the grace period, aborts the rest and resolves. With
 * `giveUp`, a lost stream it gives up on ends it the same way, rejecting
 * with that stream's error.
 */
export async function runWatcher(options: WatcherOptions, signal: AbortSignal): Promise<void> {
  const clock = options.clock ?? REAL_CLOCK;
  const activity = options.activity ?? new Activity();
  const random = options.random ?? Math.random;
  const initTimeoutMs = options.initTimeoutMs ?? INIT_TIMEOUT_MS;
  const deadlineMs = options.handlerDeadlineMs ?? HANDLER_DEADLINE_MS;
  const log = options.log;
  const queue = new KeyedQueue(options.maxInFlight ?? MAX_IN_FLIGHT);
  // Aborted only after the shutdown grace period: in-flight sends may finish.
  const tasksAbort = new AbortController();
  const marks = options.marks ?? new EventMarks();
  let attempt = 0;
  let firstInit = true;
  let failure: { error: unknown } | undefined;

  /**
   * Queues a task (waiting for room: the back-pressure on the stream); once
   * stopping, it is not queued (a later start's reconcile finds its work).
   */
  const submit = async (
    key: string,
    run: (signal: AbortSignal) => Promise<void>,
    until: AbortSignal = signal,
  ) => {
    const end = activity.begin();
    const accepted = await queue.push(key, async () => {
      // Released when the task ends: a finished task's signal is not kept for its deadline.
      const taskDeadline = deadline(tasksAbort.signal, deadlineMs, clock);
      try {
        await run(taskDeadline.signal);
      } finally {
        taskDeadline.release();
        end();
      }
    }, (error) => {
      log.error("Handling {key} failed: {error}", { key, error });
    }, until);
    if (!accepted) end();
  };
  // The shutdown grace runs from the stop, also while the stream waits for room in the queue.
  const grace = options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
  let graceTimer: Timer | undefined;
  const startGrace = () => {
    graceTimer ??= clock.setTimeout(
      () => tasksAbort.abort(new Error("Shutdown grace period over")),
      grace,
    );
  };
  signal.addEventListener("abort", startGrace, { once: true });

  // After every INIT: what the stream did not deliver (requests changed while it was down).
  // A failed reconcile is tried again while the stream stays up: nothing else would bring
  // those requests back. A stream that is gone stops it; the next INIT starts a new one.
  const startReconcile = (
    init: Extract<WatchEvent, { type: "init" }>,
    streamSignal: AbortSignal,
  ) => {
    const mark = marks.begin();
    const end = activity.begin();
    (async () => {
      for (let attempt = 0;; attempt++) {
        let tasks: readonly KeyedTask[];
        try {
          tasks = await options.reconcile(init, streamSignal);
        } catch (error) {
          if (streamSignal.aborted) return;
          // A refusal (permissions, an unknown call) is not retried: it would only repeat.
          if (!isTeleportError(error, "transient")) throw error;
          const delay = backoffDelay(attempt, RECONCILE_RETRY_BACKOFF, random);
          log.error("Reconcile after INIT failed: {error}; retrying in {delay} ms", {
            error,
            delay,
          });
          await clock.sleep(delay, streamSignal);
          continue;
        }
        for (const task of tasks) {
          if (streamSignal.aborted) return;
          if (marks.changedSince(task.key, mark)) continue;
          // A task waiting for room is dropped with its stream: the next INIT reconciles again.
          await submit(task.key, (s) => task.run(s), streamSignal);
        }
        return;
      }
    })().catch((error) => {
      if (!streamSignal.aborted) log.error("Reconcile after INIT failed: {error}", { error });
    }).finally(() => {
      marks.end(mark);
      end();
    });
  };

  while (!signal.aborted) {
    const streamAbort = new AbortController();
    const streamSignal = AbortSignal.any([signal, streamAbort.signal]);
    let sawInit = false;
    const initTimer = clock.setTimeout(
      () => streamAbort.abort(new InitTimeoutError(initTimeoutMs)),
      initTimeoutMs,
    );
    try {
      const kinds = typeof options.kinds === "function" ? options.kinds() : options.kinds;
      for await (const event of options.client.watch(kinds, streamSignal)) {
        if (event.type === "init") {
          initTimer.cancel();
          sawInit = true;
          attempt = 0;
          options.onInit?.(event, firstInit);
          firstInit = false;
          startReconcile(event, streamSignal);
          continue;
        }
        if (!sawInit) throw new Error(`Watch stream sent a ${event.type} event before INIT`);
        const key = eventKey(event);
        marks.note(key);
        await submit(key, (s) => options.handleEvent(event, s));
        if (signal.aborted) break;
      }
      if (!signal.aborted) throw new Error("Watch stream ended");
    } catch (error) {
      if (signal.aborted) break;
      const reason = streamAbort.signal.aborted ? streamAbort.signal.reason : error;
      if (reason instanceof StreamMovedError) {
        // The client moved to a new connection (a renewed identity): reopen at once; the INIT
        // that follows reconciles what came in between. Not a loss, so fail fast does not apply.
        log.info("Watch stream moved to the new connection: reopening it");
        continue;
      }
      options.onDisconnect?.(reason);
      if (options.giveUp?.(reason)) {
        log.error("Watch stream lost ({error}); not reconnecting", { error: reason });
        failure = { error: reason };
        break;
      }
      const delay = backoffDelay(attempt++, RECONNECT_BACKOFF, random);
      log.warn("Watch stream lost ({error}); reconnecting in {delay} ms", {
        error: reason,
        delay,
      });
      try {
        await clock.sleep(delay, signal);
      } catch {
        break;
      }
    } finally {
      initTimer.cancel();
      streamAbort.abort();
    }
  }

  // Stopping (or given up): let what is in flight finish, then abort it.
  if (queue.size > 0) {
    log.info("Finishing {count} event(s) in flight (for up to {grace} ms)", {
      count: queue.size,
      grace,
    });
  }
  startGrace();
  try {
    await queue.onIdle();
  } finally {
    signal.removeEventListener("abort", startGrace);
    graceTimer?.cancel();
  }
  if (failure) throw failure.error;
}
