/**
 * When a transient mail failure is tried again (SPEC §4 "retries"): after a
 * jittered exponential backoff from 15 s up to 3 minutes, or after the
 * `Retry-After` the server asked for when that is longer (up to
 * `RETRY_AFTER_MAX_MS`). A permanent failure is not tried again.
 *
 * The tries are the request's (`NotifyApp` schedules them on its clock): a
 * failed email does not wait inside its request's handling, so the other
 * emails of that request (a review, the approval) go out meanwhile, and the
 * retry sends only what is still missing.
 */
import { backoffDelay, type BackoffOptions } from "../lib/backoff.ts";
import type { MailError } from "./mailer.ts";

/** Delay before the first retry, before jitter. */
export const SEND_RETRY_BASE_MS = 15_000;
/** Longest delay between two tries, before jitter. */
export const SEND_RETRY_MAX_MS = 180_000;
// With jitter in [0.5, 1) the first five waits (15 s, 30 s, 1 min, 2 min, 3 min) add up to
// between 3.4 and 6.75 minutes; after them a try every 1.5–3 minutes, for as long as it fails.
/** The default schedule of mail retries. */
export const SEND_RETRY_BACKOFF: BackoffOptions = {
  baseMs: SEND_RETRY_BASE_MS,
  capMs: SEND_RETRY_MAX_MS,
};
/**
 * Longest wait a server's `Retry-After` gets: a rate limit's window is
 * usually a minute; a server asking for hours does not hold its emails that
 * long (the next try just comes sooner than asked).
 */
export const RETRY_AFTER_MAX_MS = 300_000;

/**
 * Wait before retry number `attempt` (0-based) after the transient `error`:
 * the backoff's delay, or the server's `Retry-After` (capped) when longer.
 */
export function mailRetryDelay(
  attempt: number,
  error: Pick<MailError, "retryAfterMs">,
  backoff: BackoffOptions = SEND_RETRY_BACKOFF,
  random: () => number = Math.random,
): number {
  return Math.max(
    backoffDelay(attempt, backoff, random),
    Math.min(error.retryAfterMs ?? 0, RETRY_AFTER_MAX_MS),
  );
}
