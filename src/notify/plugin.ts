/**
 * The running plugin: loads the identity, connects to Teleport (Ping),
 * checks the mailer, then watches access requests until told to stop.
 * "Plugin is ready" is logged only once the cluster and the mailer answered
 * and the first INIT arrived. Everything that touches the world comes in
 * through `deps` (built by main.ts).
 */
import type { Logger } from "@logtape/logtape";
import type { Config } from "../config/types.ts";
import type { Mailer } from "../mail/mailer.ts";
import { sendWithRetry } from "../mail/retry.ts";
import { connectTeleport } from "../teleport/client.ts";
import type { Env } from "../teleport/dial.ts";
import type { IdentityFs } from "../teleport/identity.ts";
import { IdentityStore } from "../teleport/identity_store.ts";
import { runWatcher } from "../teleport/watcher.ts";
import { NotifyApp } from "./app.ts";
import type { BackoffOptions } from "../lib/backoff.ts";

/** Budget for the mailer's startup health check. */
export const MAILER_HEALTH_TIMEOUT_MS = 20_000;
/** The resource kinds the plugin watches. */
export const WATCH_KINDS = ["access_request"] as const;

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
  /** Backoff of a request whose processing failed; default `REQUEST_RETRY_BACKOFF` (tests shorten it). */
  readonly requestRetry?: BackoffOptions;
}

/** Runs until `stop` aborts, then drains and returns 0. Throws on a startup failure. */
export async function runPlugin(
  config: Config,
  deps: PluginDeps,
  stop: AbortSignal,
): Promise<number> {
  const { log } = deps;
  const identities = new IdentityStore({
    config: config.teleport,
    fs: deps.identityFs,
    log: log.getChild("identity"),
  });
  const identity = await identities.load();

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
    log.info("Mailer {kind} answered the health check", { kind: config.mailer.kind });

    const notifyLog = log.getChild("notify");
    const app = new NotifyApp({
      client,
      send: (email, signal) =>
        sendWithRetry(mailer, email, {
          signal,
          ...deps.sendRetry,
          onRetry: ({ attempt, error, delayMs }) =>
            notifyLog.warn(
              "Sending to {to} failed (try {attempt}): {error}; retrying in {delayMs} ms",
              {
                to: email.to,
                attempt,
                error,
                delayMs,
              },
            ),
        }),
      cluster: ping,
      roleToRecipients: config.roleToRecipients,
      owner: deps.owner,
      log: notifyLog,
      ...(deps.isOwnerGone ? { isOwnerGone: deps.isOwnerGone } : {}),
      ...(deps.claimTtlMs ? { claimTtlMs: deps.claimTtlMs } : {}),
      ...(deps.requestRetry ? { retryBackoff: deps.requestRetry } : {}),
    });
    await runWatcher({
      client,
      kinds: WATCH_KINDS,
      handleEvent: (event, signal) => app.handleEvent(event, signal),
      reconcile: (_init, signal) => app.reconcile(signal),
      onInit: (_init, first) => {
        if (first) {
          log.info("Plugin is ready");
          deps.onReady?.();
        } else log.info("Watch stream reconnected");
      },
      log: log.getChild("watcher"),
    }, stop);
    app.stop();
    log.info("Stopped");
    return 0;
  } finally {
    await mailer.close();
    client.close();
  }
}
