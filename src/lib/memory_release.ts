/**
 * Gives memory back to the system once the plugin has had nothing to do for
 * a while after some work. A burst of requests leaves the process's resident
 * set where its peak was: V8 keeps the pages of its grown heap until its
 * next collections, and glibc keeps what the runtime freed (buffers of
 * sockets, TLS and gRPC messages) for the next allocations. This waits for
 * the quiet (`quietMs` without work) and then calls `release` once, until
 * work comes again; never while work is under way, never twice for one
 * quiet stretch. The real release is `_memory_release_deno.ts`.
 */
import type { Logger } from "@logtape/logtape";
import type { Activity } from "./activity.ts";
import type { Clock, Timer } from "./clock.ts";

/**
 * How long the plugin must have had nothing to do before memory is given
 * back: past the records' coalescing and a burst's stragglers, short enough
 * that a daemon does not sit at its peak.
 */
export const MEMORY_RELEASE_QUIET_MS = 5_000;

/** What one release did: the resident set before and after (bytes). */
export interface Released {
  readonly rssBefore: number;
  readonly rssAfter: number;
  /** Whether glibc gave pages back (false also where it cannot be asked). */
  readonly trimmed: boolean;
  /** How long the release held the plugin's thread. */
  readonly ms: number;
}

export interface MemoryReleaseOptions {
  /** What the plugin is doing: a release waits until no work is under way. */
  readonly activity: Activity;
  readonly clock: Clock;
  /** Gives memory back; may throw (logged, and tried again after the next work). */
  readonly release: () => Released | void;
  /** Quiet time before a release; default `MEMORY_RELEASE_QUIET_MS`. */
  readonly quietMs?: number;
  readonly log?: Logger;
}

const mib = (bytes: number) => Math.round(bytes / 104857.6) / 10;

/** Releases memory after each quiet stretch that follows work, until `signal` aborts. */
export function releaseMemoryWhenQuiet(options: MemoryReleaseOptions, signal: AbortSignal): void {
  const { activity, clock, release, log } = options;
  const quietMs = options.quietMs ?? MEMORY_RELEASE_QUIET_MS;
  if (signal.aborted) return;
  // Work happened since the last release (or since the start).
  let worked = activity.working > 0;
  let timer: Timer | undefined;
  const fire = () => {
    timer = undefined;
    worked = false;
    try {
      const released = release();
      if (released) {
        log?.debug(
          "Gave memory back after {quietMs} ms without work: resident set {before} → {after} MiB in {ms} ms",
          {
            quietMs,
            before: mib(released.rssBefore),
            after: mib(released.rssAfter),
            ms: Math.round(released.ms * 10) / 10,
          },
        );
      }
    } catch (error) {
      log?.warn("Could not give memory back: {error}", { error: (error as Error).message });
    }
  };
  const changed = () => {
    if (activity.working > 0) {
      worked = true;
      timer?.cancel();
      timer = undefined;
    } else if (worked && timer === undefined) {
      timer = clock.setTimeout(fire, quietMs);
    }
  };
  const unsubscribe = activity.onChange(changed);
  signal.addEventListener("abort", () => {
    unsubscribe();
    timer?.cancel();
    timer = undefined;
  }, { once: true });
}
