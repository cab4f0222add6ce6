/**
 * Holds the credentials the Teleport client uses and keeps them fresh:
 * re-reads the identity file every `refresh_identity_interval` and on demand
 * (SIGHUP). New connections always get the newest certificate; a broken or
 * half-written file keeps the old one (and says so in the log). When the
 * certificate of the live connection is about to expire and a newer one was
 * loaded, `onReconnectNeeded` fires so the client reconnects with it.
 *
 * A reloaded identity is only switched to when it is for the same cluster:
 * its CA certificates must include one of the current identity's (the set
 * the live connection verified the server with, or its successor). An
 * identity of another cluster used to be accepted here and only failed at
 * the next reconnect. This cannot compare with the CA that signed the live
 * server certificate (the TLS connection is not visible here); comparing CA
 * sets is what the files allow, and it follows a CA rotation, whose identity
 * files carry the old and the new CA together until the rotation ends.
 */
import type { Logger } from "@logtape/logtape";
import { X509Certificate } from "node:crypto";
import type { TeleportConfig } from "../config/types.ts";
import type { TlsCredentials } from "./dial.ts";
import { type Clock, REAL_CLOCK, type Timer } from "../lib/clock.ts";
import { MIB, readBoundedTextFile } from "../lib/read_file.ts";
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
/** Largest identity, key, certificate or CA file: an identity file is ~10 KiB. */
export const IDENTITY_FILE_LIMIT = 4 * MIB;

/**
 * The real file system: only regular files (a FIFO would block the read for
 * ever, and SIGTERM with it; `/dev/zero` would fill memory), at most
 * `IDENTITY_FILE_LIMIT` bytes.
 */
export function defaultIdentityFs(): IdentityFs {
  return {
    readTextFile: (path) => readBoundedTextFile(path, IDENTITY_FILE_LIMIT),
    stat: async (path) => ({ mode: (await Deno.stat(path)).mode }),
  };
}

/** SHA-256 fingerprints of PEM certificates (unreadable ones are skipped: parsing checked them). */
function fingerprints(pems: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const pem of pems) {
    try {
      out.add(new X509Certificate(pem).fingerprint256);
    } catch {
      // Not reached for an identity that parsed.
    }
  }
  return out;
}

/** Why `next` is not for the cluster of `current`; undefined when it is. */
export function otherClusterReason(current: Identity, next: Identity): string | undefined {
  if (
    current.clusterName !== undefined && next.clusterName !== undefined &&
    current.clusterName !== next.clusterName
  ) {
    return `it is for cluster "${next.clusterName}", the current one for "${current.clusterName}"`;
  }
  const known = fingerprints(current.cas);
  if ([...fingerprints(next.cas)].some((f) => known.has(f))) return undefined;
  return "its CA certificates share none with the current identity's, so it is for another " +
    "cluster (or a CA rotation was missed); restart the plugin to use it anyway";
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
    const mismatch = old === undefined ? undefined : otherClusterReason(old, loaded.identity);
    if (mismatch !== undefined) {
      this.#opts.log.error("Not using the reloaded identity ({why}): {error}", {
        why,
        error: mismatch,
      });
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
