/**
 * Jittered exponential backoff and an abortable sleep, shared by the watch
 * stream reconnects and the email retries.
 */
import { REAL_CLOCK } from "./clock.ts";

export interface BackoffOptions {
  /** First delay, before jitter. */
  readonly baseMs: number;
  /** Largest delay, before jitter. */
  readonly capMs: number;
  /** Growth per attempt; default 2. */
  readonly factor?: number;
}

/**
 * Delay before retry number `attempt` (0-based): `min(cap, base * factor^attempt)`
 * scaled by a jitter in [0.5, 1) so that replicas do not retry in step.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const factor = options.factor ?? 2;
  const raw = Math.min(options.capMs, options.baseMs * factor ** Math.max(0, attempt));
  return Math.round(raw * (0.5 + random() * 0.5));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first (real time). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return REAL_CLOCK.sleep(ms, signal);
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;
