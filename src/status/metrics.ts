/**
 * The plugin's Prometheus metrics (prom-client), in a registry of their own.
 * The rest of the plugin reports through the small `Metrics` interface
 * (`src/lib/metrics.ts`), so it never imports prom-client and tests can
 * count calls instead.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Metrics } from "../lib/metrics.ts";

export { type Metrics, NO_METRICS } from "../lib/metrics.ts";

/** Send latency buckets, seconds: loopback to a slow relay. */
const SEND_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class PromMetrics implements Metrics {
  readonly registry = new Registry();
  readonly #sent: Counter<"kind">;
  readonly #failed: Counter<"kind" | "reason">;
  readonly #latency: Histogram<"kind">;
  readonly #events: Counter<"type">;
  readonly #reconnects: Counter;
  readonly #conflicts: Counter;
  readonly #retryDepth: Gauge;
  #expiry: () => Date | undefined = () => undefined;

  constructor(now: () => number = Date.now) {
    const registers = [this.registry];
    this.#sent = new Counter({
      name: "teleport_email_emails_sent_total",
      help:
        "Emails accepted by the mail server or API, by kind (new, requester, review, resolution, reminder, escalation, access_expiry)",
      labelNames: ["kind"],
      registers,
    });
    this.#failed = new Counter({
      name: "teleport_email_emails_failed_total",
      help: "Email sends that failed, by kind and reason (transient or permanent)",
      labelNames: ["kind", "reason"],
      registers,
    });
    this.#latency = new Histogram({
      name: "teleport_email_send_duration_seconds",
      help: "Time to hand one email to the mail server or API, retries included",
      labelNames: ["kind"],
      buckets: SEND_BUCKETS,
      registers,
    });
    this.#events = new Counter({
      name: "teleport_email_events_processed_total",
      help: "Watch events handled, by type (put, delete)",
      labelNames: ["type"],
      registers,
    });
    this.#reconnects = new Counter({
      name: "teleport_email_watch_reconnects_total",
      help: "Times the watch stream was lost and reopened",
      registers,
    });
    this.#conflicts = new Counter({
      name: "teleport_email_plugin_data_conflicts_total",
      help: "Plugin-data compare-and-swap conflicts (another writer got there first)",
      registers,
    });
    const expiry = () => this.#expiry();
    new Gauge({
      name: "teleport_email_identity_expiry_seconds",
      help: "Seconds until the identity's TLS certificate expires",
      registers,
      collect() {
        const notAfter = expiry();
        if (notAfter) this.set((notAfter.getTime() - now()) / 1000);
      },
    });
    this.#retryDepth = new Gauge({
      name: "teleport_email_retry_queue_depth",
      help: "Access requests waiting to be retried",
      registers,
    });
  }

  emailSent(kind: string, seconds: number) {
    this.#sent.inc({ kind });
    this.#latency.observe({ kind }, seconds);
  }
  emailFailed(kind: string, reason: string) {
    this.#failed.inc({ kind, reason });
  }
  eventProcessed(type: string) {
    this.#events.inc({ type });
  }
  watchReconnected() {
    this.#reconnects.inc();
  }
  casConflict() {
    this.#conflicts.inc();
  }
  identityExpiry(source: () => Date | undefined) {
    this.#expiry = source;
  }
  setRetryQueueDepth(depth: number) {
    this.#retryDepth.set(depth);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
