/**
 * Jittered exponential backoff and an abortable sleep, shared by the watch
 * stream reconnects and the email retries.
 */

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

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;
