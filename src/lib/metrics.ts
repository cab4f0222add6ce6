/**
 * What the plugin reports about itself, as an interface: the notifier,
 * watcher and identity store call it; `src/status/metrics.ts` implements it
 * with Prometheus counters when the status listener is on.
 */

/** What the plugin reports. Every method is cheap and never throws. */
export interface Metrics {
  emailSent(kind: string, seconds: number): void;
  emailFailed(kind: string, reason: string): void;
  eventProcessed(type: string): void;
  watchReconnected(): void;
  casConflict(): void;
  /** Where to read the identity certificate's expiry at each scrape. */
  identityExpiry(source: () => Date | undefined): void;
  setRetryQueueDepth(depth: number): void;
}

/** A `Metrics` that records nothing (no status listener). */
export const NO_METRICS: Metrics = {
  emailSent() {},
  emailFailed() {},
  eventProcessed() {},
  watchReconnected() {},
  casConflict() {},
  identityExpiry() {},
  setRetryQueueDepth() {},
};
