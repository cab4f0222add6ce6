/**
 * Sending with retries (SPEC §4 "retries"): a transient `MailError` is tried
 * again after a jittered exponential backoff that spans several minutes, or
 * after the `Retry-After` the server asked for when that is longer (up to
 * `RETRY_AFTER_MAX_MS`); a permanent one, or any other error, is thrown at once. Time and randomness
 * are injected so tests do not wait.
 */
import { backoffDelay, type Sleep, sleep as realSleep } from "../lib/backoff.ts";
import { type Mailer, MailError, type OutgoingEmail, type SentEmail } from "./mailer.ts";

/** Tries in all: the first send and five retries. */
export const SEND_ATTEMPTS = 6;
/** Delay before the first retry, before jitter. */
export const SEND_RETRY_BASE_MS = 15_000;
/** Longest delay between two tries, before jitter. */
export const SEND_RETRY_MAX_MS = 180_000;
// With jitter in [0.5, 1) the five waits (15 s, 30 s, 1 min, 2 min, 3 min) add
// up to between 3.4 and 6.75 minutes: long enough to ride out a restarting
// relay or a rate limit, short enough not to hold a request's handler forever.
/**
 * Longest wait a server's `Retry-After` gets: a rate limit's window is
 * usually a minute; a server asking for hours does not hold a request's
 * handler that long (the next try just comes sooner than asked).
 */
export const RETRY_AFTER_MAX_MS = 300_000;

export interface RetryInfo {
  /** The try that failed, 1-based. */
  readonly attempt: number;
  readonly error: MailError;
  /** Wait before the next try. */
  readonly delayMs: number;
}

export interface RetryOptions {
  /** Tries in all, at least 1; default `SEND_ATTEMPTS`. */
  readonly attempts?: number;
  /** Default `SEND_RETRY_BASE_MS`. */
  readonly baseDelayMs?: number;
  /** Default `SEND_RETRY_MAX_MS`. */
  readonly maxDelayMs?: number;
  /** Stops sending and waiting; the promise rejects with its reason. */
  readonly signal?: AbortSignal;
  /** Default: a timer that the signal cancels. */
  readonly sleep?: Sleep;
  /** Jitter source in [0, 1); default `Math.random`. */
  readonly random?: () => number;
  /** Called before each wait, e.g. to log the failure. */
  readonly onRetry?: (info: RetryInfo) => void;
}

/**
 * Sends `email`, retrying transient failures. Resolves with the first
 * success; rejects with a permanent error at once, with the last transient
 * error once the tries are used up, or with the signal's reason.
 */
export async function sendWithRetry(
  mailer: Mailer,
  email: OutgoingEmail,
  options: RetryOptions = {},
): Promise<SentEmail> {
  const attempts = Math.max(1, options.attempts ?? SEND_ATTEMPTS);
  const backoff = {
    baseMs: options.baseDelayMs ?? SEND_RETRY_BASE_MS,
    capMs: options.maxDelayMs ?? SEND_RETRY_MAX_MS,
  };
  const sleep = options.sleep ?? realSleep;
  const { signal } = options;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await mailer.send(email, signal);
    } catch (err) {
      if (!(err instanceof MailError) || !err.transient || attempt >= attempts) throw err;
      const delayMs = Math.max(
        backoffDelay(attempt - 1, backoff, options.random),
        Math.min(err.retryAfterMs ?? 0, RETRY_AFTER_MAX_MS),
      );
      options.onRetry?.({ attempt, error: err, delayMs });
      await sleep(delayMs, signal);
    }
  }
}
