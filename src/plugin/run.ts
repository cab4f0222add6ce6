/**
 * The composition root of `teleport-email start`: builds the running plugin
 * from the config and the process's dependencies (identity store, Teleport
 * client, mailer, status listener, watcher, notifier), then watches access
 * requests until told to stop. "Plugin is ready" is logged only once the
 * cluster and the mailer answered and the first INIT arrived. The policy
 * (`src/notify/`) sees only interfaces and domain types; this file wires.
 */
import type { Logger } from "@logtape/logtape";
import type { Config } from "../config/types.ts";
import { type Mailer, MailError, type OutgoingEmail } from "../mail/mailer.ts";
import { type Clock, REAL_CLOCK } from "../lib/clock.ts";
import { Activity } from "../lib/activity.ts";
import { type Released, releaseMemoryWhenQuiet } from "../lib/memory_release.ts";
import { envBool } from "../lib/env_bool.ts";
import type { BackoffOptions } from "../lib/backoff.ts";
import { type Metrics, NO_METRICS } from "../lib/metrics.ts";
import {
  Readiness,
  startStatusServer,
  statusListenerWarning,
  type StatusServer,
} from "../status/server.ts";
import { connectTeleport } from "../teleport/client.ts";
import type { Env } from "../teleport/dial.ts";
import type { IdentityFs } from "../teleport/identity.ts";
import { IdentityStore } from "../teleport/identity_store.ts";
import { runWatcher } from "../teleport/watcher.ts";
import { TeleportError } from "../teleport/errors.ts";
import { NotifyApp } from "../notify/app.ts";
import { MessageTemplates } from "../notify/template.ts";
import { RULE_KIND, RuleSource } from "../notify/rules.ts";

/** Budget for the mailer's startup health check. */
export const MAILER_HEALTH_TIMEOUT_MS = 20_000;
/** The resource kind of access requests, always watched. */
const REQUEST_KIND = "access_request";
/**
 * How often due timed work (reminders, escalations, expiry warnings) is
 * looked for, when any of them is on: one scheduler for all of them.
 */
export const REMINDER_CHECK_MS = 60_000;
/**
 * Teleport's plugins exit when their watch stream is lost and this is true
 * (the Helm chart sets it, so that Kubernetes restarts the pod); without it
 * they, and we, reconnect in the process.
 */
export const FAIL_FAST_ENV = "TELEPORT_PLUGIN_FAIL_FAST";

export interface PluginDeps {
  readonly env: Env;
  readonly identityFs: IdentityFs;
  createMailer(config: Config): Mailer | Promise<Mailer>;
  /** Registers what SIGHUP does. */
  onReload(listener: () => void): void;
  /** Registers what must happen, briefly, before a forced exit (a second SIGINT). */
  onForcedExit?(hook: () => Promise<void>): void;
  readonly log: Logger;
  /** Unique per process: the owner name in plugin-data claims. */
  readonly owner: string;
  /** Whether a claim's owner is known to be gone (a previous run on this host). */
  isOwnerGone?(owner: string): boolean;
  /** Called once the plugin is ready (cluster and mailer answered, first INIT seen). */
  onReady?(): void;
  /** Backoff of a request's emails that failed for now; default `SEND_RETRY_BACKOFF` (minutes). */
  readonly sendRetry?: BackoffOptions;
  /** Claim lifetime (tests shorten it). */
  readonly claimTtlMs?: number;
  /** How often due timed work is looked for; default `REMINDER_CHECK_MS`. */
  readonly reminderCheckMs?: number;
  /** The notifier's clock (claims, retries, reminders); default the real one. */
  readonly clock?: Clock;
  /** Counts the work under way (events, reconciles, retries, reminder checks). */
  readonly activity?: Activity;
  /**
   * Gives memory back to the system (`releaseMemory` of `_memory_release_deno.ts`), called
   * once after each quiet stretch that follows work; none when absent.
   */
  releaseMemory?(): Released | void;
  /** Called with the bound address once the status listener is up. */
  onStatusListening?(addr: string): void;
  /** Backoff of a request whose processing failed; default `REQUEST_RETRY_BACKOFF` (tests shorten it). */
  readonly requestRetry?: BackoffOptions;
}

/**
 * Runs until `stop` aborts, then drains and returns 0 (also when `stop`
 * aborts during startup). Throws on a startup failure.
 */
export async function runPlugin(
  config: Config,
  deps: PluginDeps,
  stop: AbortSignal,
): Promise<number> {
  const { log } = deps;
  const readiness = new Readiness();
  let metrics: Metrics = NO_METRICS;
  let status: StatusServer | undefined;
  if (config.status.listenAddr !== undefined) {
    // prom-client is loaded only when the listener is on (memory).
    const { PromMetrics } = await import("../status/metrics.ts");
    const prom = new PromMetrics();
    metrics = prom;
    status = startStatusServer(config.status.listenAddr, readiness, prom);
    const exposed = statusListenerWarning(config.status.listenAddr);
    if (exposed !== undefined) log.warn("{warning}", { warning: exposed });
    log.info("Status listener on http://{addr} (/healthz, /readyz, /metrics)", {
      addr: status.addr,
    });
    deps.onStatusListening?.(status.addr);
  }
  try {
    return await runConnected(config, deps, stop, readiness, metrics);
  } catch (error) {
    // Told to stop while still starting (a slow cluster or mail server): a
    // stop, not a failure.
    if (!stop.aborted) throw error;
    log.info("Stopped before the plugin was ready");
    return 0;
  } finally {
    await status?.close();
  }
}

/**
 * One try of the mailer's send, keeping the readiness of the mailer up to
 * date; the notifier retries what failed for a while (its request's retry).
 */
function sendingWith(mailer: Mailer, readiness: Readiness) {
  return async (email: OutgoingEmail, signal: AbortSignal) => {
    try {
      const sent = await mailer.send(email, signal);
      readiness.mailerUp();
      return sent;
    } catch (error) {
      if (error instanceof MailError && error.transient) readiness.mailerDown(error);
      throw error;
    }
  };
}

/** The mailer, once it answered its health check (closed again when it did not). */
async function startMailer(config: Config, deps: PluginDeps, stop: AbortSignal): Promise<Mailer> {
  const mailer = await deps.createMailer(config);
  try {
    await mailer.checkHealth(
      AbortSignal.any([stop, AbortSignal.timeout(MAILER_HEALTH_TIMEOUT_MS)]),
    );
  } catch (error) {
    await mailer.close();
    throw new Error(`Mailer health check failed: ${(error as Error).message}`, { cause: error });
  }
  return mailer;
}

async function runConnected(
  config: Config,
  deps: PluginDeps,
  stop: AbortSignal,
  readiness: Readiness,
  metrics: Metrics,
): Promise<number> {
  const { log } = deps;
  const clock = deps.clock ?? REAL_CLOCK;
  const activity = deps.activity ?? new Activity();
  const failFast = envBool(deps.env, FAIL_FAST_ENV);
  const identities = new IdentityStore({
    config: config.teleport,
    fs: deps.identityFs,
    log: log.getChild("identity"),
  });
  const identity = await identities.load();
  metrics.identityExpiry(() => identities.identity.notAfter);

  // The mailer starts and answers its health check while the cluster is
  // dialled: the two wait on different servers. The cluster's failure is
  // reported first, as when they ran one after the other.
  const mailerReady = startMailer(config, deps, stop);
  mailerReady.catch(() => {});
  let connected: Awaited<ReturnType<typeof connectTeleport>>;
  try {
    connected = await connectTeleport({
      addr: config.teleport.addr,
      credentials: identities.credentials,
      clusterName: identity.clusterName,
      env: deps.env,
      log: log.getChild("teleport"),
      ...(config.teleport.proxyCa ? { proxyCas: [config.teleport.proxyCa] } : {}),
      signal: stop,
    });
  } catch (error) {
    void mailerReady.then((mailer) => mailer.close(), () => {});
    throw error;
  }
  const { client, ping } = connected;
  identities.markConnected();
  identities.onReconnectNeeded(() => {
    client.reconnect();
    identities.markConnected();
  });
  deps.onReload(() => void identities.reload("SIGHUP"));
  identities.runRefresh(stop);

  let mailer: Mailer;
  try {
    mailer = await mailerReady;
  } catch (error) {
    client.close();
    throw error;
  }
  try {
    readiness.mailerUp();
    log.info("Mailer {kind} answered the health check", { kind: config.mailer.kind });

    const notifyLog = log.getChild("notify");
    const rules = new RuleSource(client, log.getChild("rules"));
    const app = new NotifyApp({
      client,
      send: sendingWith(mailer, readiness),
      prepare: (content) => mailer.prepare?.(content) ?? (() => {}),
      openEnvelopes: (recipients) => mailer.openEnvelopes?.(recipients) ?? (() => {}),
      rules,
      notifyRequester: config.delivery.notifyRequester,
      maxRecipients: config.delivery.maxRecipients,
      catchUpWindowMs: config.delivery.catchUpWindowMs,
      ...(config.reminders ? { reminders: config.reminders } : {}),
      ...(config.escalation ? { escalation: config.escalation } : {}),
      ...(config.accessExpiry ? { accessExpiry: config.accessExpiry } : {}),
      ...(config.templates ? { templates: new MessageTemplates(config.templates) } : {}),
      clock,
      activity,
      cluster: ping,
      roleToRecipients: config.roleToRecipients,
      owner: deps.owner,
      log: notifyLog,
      metrics,
      ...(deps.isOwnerGone ? { isOwnerGone: deps.isOwnerGone } : {}),
      ...(deps.claimTtlMs ? { claimTtlMs: deps.claimTtlMs } : {}),
      ...(deps.requestRetry ? { retryBackoff: deps.requestRetry } : {}),
      ...(deps.sendRetry ? { mailRetryBackoff: deps.sendRetry } : {}),
    });
    // Stopping: write the records of emails already sent at once, not at the
    // end of their coalescing window.
    stop.addEventListener("abort", () => {
      // No retry or due check starts any more; those under way get the shutdown grace.
      app.beginStop();
      void app.flushRecords();
    }, { once: true });
    deps.onForcedExit?.(() => app.flushRecords());
    if (deps.releaseMemory) {
      releaseMemoryWhenQuiet({
        activity,
        clock,
        release: deps.releaseMemory,
        log: log.getChild("memory"),
      }, stop);
    }
    if (failFast) {
      log.info("{env} is on: a lost watch stream ends the plugin", { env: FAIL_FAST_ENV });
    }
    let retryWithoutRules = false;
    await runWatcher({
      client,
      kinds: () => rules.allowed ? [REQUEST_KIND, RULE_KIND] : [REQUEST_KIND],
      handleEvent: (event, signal) => app.handleEvent(event, signal),
      reconcile: (_init, signal) => app.reconcile(signal),
      onInit: (init, first) => {
        rules.checkInit(init.acceptedKinds);
        readiness.watchUp();
        if (first) {
          log.info("Plugin is ready");
          app.startDueChecks(deps.reminderCheckMs ?? REMINDER_CHECK_MS, stop);
          deps.onReady?.();
        } else {
          log.info("Watch stream reconnected");
          // Counted once the stream is back, not per failed attempt while it is gone.
          metrics.watchReconnected();
        }
      },
      onDisconnect: (error) => {
        const rulesWereWatched = rules.allowed;
        rules.checkWatchError(error);
        // A watch refused for the rules' kind is retried without it, fail fast or not.
        retryWithoutRules = rulesWereWatched && !rules.allowed;
        readiness.watchDown({
          server: config.teleport.addr,
          code: error instanceof TeleportError ? error.kind : undefined,
        });
      },
      giveUp: () => failFast && !retryWithoutRules,
      log: log.getChild("watcher"),
      activity,
    }, stop);
    app.stop();
    // Retries and due checks still sending finish (or are cut at the grace's end) before the
    // mailer and the client close under them.
    await app.drain();
    log.info("Stopped");
    return 0;
  } finally {
    await mailer.close();
    client.close();
  }
}
