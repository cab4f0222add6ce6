/**
 * The running plugin: loads the identity, connects to Teleport (Ping),
 * checks the mailer, then watches access requests until told to stop.
 * "Plugin is ready" is logged only once the cluster and the mailer answered
 * and the first INIT arrived. Everything that touches the world comes in
 * through `deps` (built by main.ts).
 */
import type { Logger } from "@logtape/logtape";
import type { Config } from "../config/types.ts";
import { type Mailer, MailError, type OutgoingEmail } from "../mail/mailer.ts";
import { type Metrics, NO_METRICS, PromMetrics } from "../status/metrics.ts";
import { Readiness, startStatusServer, type StatusServer } from "../status/server.ts";
import { sendWithRetry } from "../mail/retry.ts";
import * as grpc from "@grpc/grpc-js";
import { connectTeleport, isGrpcError } from "../teleport/client.ts";
import { RuleSet } from "./rules.ts";
import type { Env } from "../teleport/dial.ts";
import type { IdentityFs } from "../teleport/identity.ts";
import { IdentityStore } from "../teleport/identity_store.ts";
import { runWatcher } from "../teleport/watcher.ts";
import { NotifyApp } from "./app.ts";
import type { BackoffOptions } from "../lib/backoff.ts";

/** Budget for the mailer's startup health check. */
export const MAILER_HEALTH_TIMEOUT_MS = 20_000;
/** The resource kinds the plugin watches (rules only while the server lets us read them). */
export const WATCH_KINDS = ["access_request", "access_monitoring_rule"] as const;
/** How often due reminders are looked for (when `[reminders]` is on). */
export const REMINDER_CHECK_MS = 60_000;
/** gRPC codes that mean "this server will not give us access monitoring rules". */
const RULES_REFUSED = new Set([
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.NOT_FOUND,
  grpc.status.INVALID_ARGUMENT,
]);

export interface PluginDeps {
  readonly env: Env;
  readonly identityFs: IdentityFs;
  createMailer(config: Config): Mailer;
  /** Registers what SIGHUP does. */
  onReload(listener: () => void): void;
  readonly log: Logger;
  /** Unique per process: the owner name in plugin-data claims. */
  readonly owner: string;
  /** Whether a claim's owner is known to be gone (a previous run on this host). */
  isOwnerGone?(owner: string): boolean;
  /** Called once the plugin is ready (cluster and mailer answered, first INIT seen). */
  onReady?(): void;
  /** Email retry timing; the defaults span several minutes. */
  readonly sendRetry?: { readonly baseDelayMs: number; readonly maxDelayMs: number };
  /** Claim lifetime (tests shorten it). */
  readonly claimTtlMs?: number;
  /** How often due reminders are looked for; default `REMINDER_CHECK_MS`. */
  readonly reminderCheckMs?: number;
  /** The clock of the notifier (tests control it for reminders). */
  readonly now?: () => number;
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
    const prom = new PromMetrics();
    metrics = prom;
    status = startStatusServer(config.status.listenAddr, readiness, prom);
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

async function runConnected(
  config: Config,
  deps: PluginDeps,
  stop: AbortSignal,
  readiness: Readiness,
  metrics: Metrics,
): Promise<number> {
  const { log } = deps;
  const identities = new IdentityStore({
    config: config.teleport,
    fs: deps.identityFs,
    log: log.getChild("identity"),
  });
  const identity = await identities.load();
  metrics.identityExpiry(() => identities.identity.notAfter);

  const { client, ping } = await connectTeleport({
    addr: config.teleport.addr,
    credentials: identities.credentials,
    clusterName: identity.clusterName,
    env: deps.env,
    log: log.getChild("teleport"),
    signal: stop,
  });
  identities.markConnected();
  identities.onReconnectNeeded(() => {
    client.reconnect();
    identities.markConnected();
  });
  deps.onReload(() => void identities.reload("SIGHUP"));
  identities.runRefresh(stop);

  const mailer = deps.createMailer(config);
  try {
    try {
      await mailer.checkHealth(
        AbortSignal.any([stop, AbortSignal.timeout(MAILER_HEALTH_TIMEOUT_MS)]),
      );
    } catch (error) {
      throw new Error(`Mailer health check failed: ${(error as Error).message}`, { cause: error });
    }
    readiness.mailerHealthy = true;
    readiness.mailerError = undefined;
    log.info("Mailer {kind} answered the health check", { kind: config.mailer.kind });

    const notifyLog = log.getChild("notify");
    const send = async (email: OutgoingEmail, signal: AbortSignal) => {
      try {
        const sent = await sendWithRetry(mailer, email, {
          signal,
          ...deps.sendRetry,
          onRetry: ({ attempt, error, delayMs }) => {
            readiness.mailerHealthy = false;
            readiness.mailerError = error.message;
            notifyLog.warn(
              "Sending to {to} failed (try {attempt}): {error}; retrying in {delayMs} ms",
              { to: email.to, attempt, error, delayMs },
            );
          },
        });
        readiness.mailerHealthy = true;
        readiness.mailerError = undefined;
        return sent;
      } catch (error) {
        if (error instanceof MailError && error.transient) {
          readiness.mailerHealthy = false;
          readiness.mailerError = error.message;
        }
        throw error;
      }
    };
    const rulesLog = log.getChild("rules");
    const rules = new RuleSet(rulesLog);
    let rulesAllowed = true;
    const refuseRules = (why: string) => {
      if (!rulesAllowed) return;
      rulesAllowed = false;
      rules.replaceAll([]);
      rulesLog.warn(
        "Access monitoring rules are not used ({why}): recipients come from role_to_recipients",
        { why },
      );
    };
    const app = new NotifyApp({
      client,
      send,
      rules,
      reloadRules: async (signal) => {
        if (!rulesAllowed) return;
        try {
          const since = rules.mark();
          rules.replaceAll(await client.listAccessMonitoringRules(signal), since);
          rulesLog.debug("Loaded {count} access monitoring rule(s) for email", {
            count: rules.size,
          });
        } catch (error) {
          if (!isGrpcError(error) || !RULES_REFUSED.has(error.code)) throw error;
          refuseRules(`the cluster answered ${error.details || error.message}`);
        }
      },
      notifyRequester: config.delivery.notifyRequester,
      ...(config.reminders ? { reminders: config.reminders } : {}),
      ...(deps.now ? { now: deps.now } : {}),
      cluster: ping,
      roleToRecipients: config.roleToRecipients,
      owner: deps.owner,
      log: notifyLog,
      metrics,
      ...(deps.isOwnerGone ? { isOwnerGone: deps.isOwnerGone } : {}),
      ...(deps.claimTtlMs ? { claimTtlMs: deps.claimTtlMs } : {}),
      ...(deps.requestRetry ? { retryBackoff: deps.requestRetry } : {}),
    });
    let reminderTimer: ReturnType<typeof setInterval> | undefined;
    const startReminders = () => {
      if (!config.reminders || reminderTimer !== undefined) return;
      let running = false;
      reminderTimer = setInterval(() => {
        if (running) return;
        running = true;
        app.checkReminders(AbortSignal.any([stop, AbortSignal.timeout(5 * 60_000)]))
          .catch((error) => notifyLog.warn("Checking reminders failed: {error}", { error }))
          .finally(() => (running = false));
      }, deps.reminderCheckMs ?? REMINDER_CHECK_MS);
    };
    await runWatcher({
      client,
      kinds: () => rulesAllowed ? WATCH_KINDS : ["access_request"],
      handleEvent: (event, signal) => app.handleEvent(event, signal),
      reconcile: (_init, signal) => app.reconcile(signal),
      onInit: (init, first) => {
        if (init.acceptedKinds && !init.acceptedKinds.includes("access_monitoring_rule")) {
          refuseRules("the cluster does not let this plugin watch them");
        }
        readiness.watchConnected = true;
        readiness.watchError = undefined;
        if (first) {
          log.info("Plugin is ready");
          startReminders();
          deps.onReady?.();
        } else {
          log.info("Watch stream reconnected");
          // Counted once the stream is back, not per failed attempt while it is gone.
          metrics.watchReconnected();
        }
      },
      onDisconnect: (error) => {
        // Old servers refuse the whole watch when they do not know a kind.
        if (
          rulesAllowed && isGrpcError(error) &&
          (error.code === grpc.status.INVALID_ARGUMENT ||
            error.code === grpc.status.PERMISSION_DENIED)
        ) refuseRules(`the watch was refused: ${error.details || error.message}`);
        readiness.watchConnected = false;
        readiness.watchError = `watch stream lost: ${(error as Error)?.message ?? error}`;
      },
      log: log.getChild("watcher"),
    }, stop);
    clearInterval(reminderTimer);
    app.stop();
    log.info("Stopped");
    return 0;
  } finally {
    await mailer.close();
    client.close();
  }
}
