/**
 * The requesting user's traits, for access monitoring rules that test
 * `user.traits` (as Teleport's plugins load them: `GetUser` per request).
 * Cached per user for a short while, so a burst from one user costs one
 * read; a user that does not exist has no traits; when the cluster denies
 * reading users this is said once and rules see no traits, as they would
 * in Teleport with an empty trait map.
 */
import type { Logger } from "@logtape/logtape";
import type { Clock } from "../lib/clock.ts";
import { isTeleportError, type TeleportClient } from "../teleport/types.ts";

/** How long a user's traits are used before they are read again. */
export const USER_TRAITS_TTL_MS = 60_000;
/** After a refusal to read users, how long before asking again (the role may change). */
export const USERS_DENIED_RETRY_MS = 10 * 60_000;
/** Users whose traits are kept at most (the oldest read is dropped first). */
export const MAX_CACHED_USERS = 1_000;

export type Traits = Readonly<Record<string, readonly string[]>>;

const NO_TRAITS: Traits = Object.freeze({});

export class UserTraits {
  readonly #client: Pick<TeleportClient, "getUser">;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #cache = new Map<string, { traits: Traits; at: number }>();
  #deniedAt: number | undefined;

  constructor(client: Pick<TeleportClient, "getUser">, log: Logger, clock: Clock) {
    this.#client = client;
    this.#log = log;
    this.#clock = clock;
  }

  /**
   * The traits of user `name`; none when the user does not exist or users
   * may not be read. Rejects for a failure that may pass (the request is
   * then retried, rather than routed without the traits its rules test).
   */
  async get(name: string, signal: AbortSignal): Promise<Traits> {
    const now = this.#clock.now();
    if (this.#deniedAt !== undefined && now - this.#deniedAt < USERS_DENIED_RETRY_MS) {
      return NO_TRAITS;
    }
    const cached = this.#cache.get(name);
    if (cached && now - cached.at < USER_TRAITS_TTL_MS) return cached.traits;
    let traits: Traits;
    try {
      traits = (await this.#client.getUser(name, signal)).traits;
      this.#deniedAt = undefined;
    } catch (error) {
      if (isTeleportError(error, "denied")) {
        if (this.#deniedAt === undefined) {
          this.#log.warn(
            "The cluster does not let this plugin read users ({error}): access monitoring rules " +
              "see no user.traits (give its role `read` on `user` to route by traits)",
            { error },
          );
        }
        this.#deniedAt = now;
        return NO_TRAITS;
      }
      if (!isTeleportError(error, "not_found")) throw error;
      traits = NO_TRAITS;
    }
    this.#cache.delete(name);
    this.#cache.set(name, { traits, at: now });
    if (this.#cache.size > MAX_CACHED_USERS) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    return traits;
  }
}
