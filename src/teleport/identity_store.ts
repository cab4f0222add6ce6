/**
 * Holds the credentials the Teleport client uses and keeps them fresh:
 * re-reads the identity file every `refresh_identity_interval` and on demand
 * (SIGHUP). New connections always get the newest certificate; a broken or
 * half-written file keeps the old one (and says so in the log). When the
 * certificate of the live connection is about to expire and a newer one was
 * loaded, `onReconnectNeeded` fires so the client reconnects with it.
 */
import type { Logger } from "@logtape/logtape";
import type { TeleportConfig } from "../config/types.ts";
import type { TlsCredentials } from "./dial.ts";
import { type Clock, REAL_CLOCK, type Timer } from "../lib/clock.ts";
import {
  checkExpiry,
  type Identity,
  type IdentityFs,
  loadCredentialFiles,
  type LoadedIdentity,
  loadIdentityFile,
} from "./identity.ts";

/** Reconnect this long before the live certificate expires (at least). */
export const RECONNECT_BEFORE_EXPIRY_MS = 60_000;

export function defaultIdentityFs(): IdentityFs {
  return {
    readTextFile: (path) => Deno.readTextFile(path),
    stat: async (path) => ({ mode: (await Deno.stat(path)).mode }),
  };
}

export interface IdentityStoreOptions {
  readonly config: TeleportConfig;
  readonly fs: IdentityFs;
  readonly log: Logger;
  /** Wall time and the refresh and reconnect timers; default the real clock. */
  readonly clock?: Clock;
}

export class IdentityStore {
  readonly #opts: IdentityStoreOptions;
  readonly #clock: Clock;
  #identity: Identity | undefined;
  /** The certificate the live connection was opened with. */
  #liveSerial: string | undefined;
  #liveNotAfter: Date | undefined;
  #reconnectTimer: Timer | undefined;
  /** Set when the `runRefresh` signal aborted: no more timers. */
  #stopped = false;
  #listeners: (() => void)[] = [];

  constructor(opts: IdentityStoreOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? REAL_CLOCK;
  }

  /** The current identity; `load()` must have succeeded. */
  get identity(): Identity {
    if (!this.#identity) throw new Error("Identity not loaded yet");
    return this.#identity;
  }

  /** For the channel credentials: called on every new connection. */
  readonly credentials = (): TlsCredentials => {
    const id = this.identity;
    return { key: id.key, cert: id.cert, cas: id.cas };
  };

  /** Called (once per rotation) when the live connection should be reopened with the new certificate. */
  onReconnectNeeded(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** First load: any problem, an expired certificate included, is an error. */
  async load(): Promise<Identity> {
    const loaded = await this.#read();
    const check = checkExpiry(
      loaded.identity,
      new Date(this.#clock.now()),
      this.#opts.config.refreshIdentity ? this.#opts.config.refreshIdentityIntervalMs : 0,
    );
    if (!check.ok) throw check.error;
    for (const warning of loaded.warnings) this.#opts.log.warn("{warning}", { warning });
    if (check.warning) this.#opts.log.warn("{warning}", { warning: check.warning });
    this.#identity = loaded.identity;
    return loaded.identity;
  }

  /** Marks the current certificate as the one the live connection uses. */
  markConnected(): void {
    const id = this.identity;
    this.#liveSerial = id.serial;
    this.#liveNotAfter = id.notAfter;
    this.#scheduleReconnect();
  }

  /**
   * Re-reads the file. Keeps the old credentials (and logs an error) when the
   * new ones cannot be read or have expired. Returns whether they changed.
   */
  async reload(why: string): Promise<boolean> {
    let loaded: LoadedIdentity;
    try {
      loaded = await this.#read();
    } catch (error) {
      this.#opts.log.error(
        "Cannot reload the identity ({why}), keeping the current one: {error}",
        { why, error },
      );
      return false;
    }
    const check = checkExpiry(loaded.identity, new Date(this.#clock.now()), 0);
    if (!check.ok) {
      this.#opts.log.error("Not using the reloaded identity ({why}): {error}", {
        why,
        error: check.error,
      });
      return false;
    }
    const old = this.#identity;
    if (old && old.serial === loaded.identity.serial && old.cert === loaded.identity.cert) {
      this.#opts.log.debug("Identity reloaded ({why}): unchanged", { why });
      return false;
    }
    this.#identity = loaded.identity;
    this.#opts.log.info(
      "Identity reloaded ({why}): certificate serial {serial}, valid until {notAfter}",
      { why, serial: loaded.identity.serial, notAfter: loaded.identity.notAfter },
    );
    this.#scheduleReconnect();
    return true;
  }

  /**
   * Reloads every refresh interval until `signal` aborts (when
   * `refresh_identity` is on). The abort also ends a pending reconnect, which
   * an on-demand reload (SIGHUP) may arm even with `refresh_identity` off.
   */
  runRefresh(signal: AbortSignal): void {
    const { refreshIdentity, refreshIdentityIntervalMs } = this.#opts.config;
    const timer = refreshIdentity
      ? this.#clock.setInterval(
        () => void this.reload("periodic refresh"),
        refreshIdentityIntervalMs,
      )
      : undefined;
    signal.addEventListener("abort", () => {
      this.#stopped = true;
      timer?.cancel();
      this.#reconnectTimer?.cancel();
      this.#reconnectTimer = undefined;
    }, { once: true });
  }

  /**
   * When a newer certificate than the live one is loaded, reconnect before
   * the live one expires (now, if that is already close).
   */
  #scheduleReconnect() {
    this.#reconnectTimer?.cancel();
    this.#reconnectTimer = undefined;
    if (this.#stopped) return;
    const id = this.#identity;
    if (!id || !this.#liveNotAfter || this.#liveSerial === id.serial) return;
    if (id.notAfter.getTime() <= this.#liveNotAfter.getTime()) return;
    const margin = Math.max(
      RECONNECT_BEFORE_EXPIRY_MS,
      2 * this.#opts.config.refreshIdentityIntervalMs,
    );
    const delay = Math.max(0, this.#liveNotAfter.getTime() - margin - this.#clock.now());
    // The clock chains delays beyond setTimeout's 24.8 days (long-lived certificates).
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#opts.log.info(
        "The connection's certificate expires soon: reconnecting with the new one",
      );
      for (const listener of this.#listeners) listener();
    }, delay);
  }

  #read(): Promise<LoadedIdentity> {
    const { credentials } = this.#opts.config;
    return credentials.kind === "identity"
      ? loadIdentityFile(credentials.identityFile, this.#opts.fs)
      : loadCredentialFiles(
        credentials.clientKey,
        credentials.clientCrt,
        credentials.rootCas,
        this.#opts.fs,
      );
  }
}
