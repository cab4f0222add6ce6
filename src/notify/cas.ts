/**
 * Compare-and-swap of the plugin data on one access request: read, apply a
 * pure update, write only if nobody wrote in between, else start over. Every
 * claim (who sends which email) goes through here, so that several
 * instances, or the Go plugin next to us, never act twice on one change.
 */
import { CompareFailedError, type PluginData, type TeleportClient } from "../teleport/types.ts";
import {
  decodePluginData,
  type EmailPluginData,
  encodePluginData,
  LEGACY_PLUGIN_DATA_KEYS,
  PLUGIN_DATA_KEYS,
} from "./plugin_data.ts";

/** Tries (read + write) before giving up on a record that keeps changing; the Go plugin's. */
export const MAX_MODIFY_ATTEMPTS = 5;

/**
 * Keys always expected, as read ("" when absent), even when not written: the
 * update decided on their values, so a concurrent change to one of them must
 * fail the write (the Go plugin expects its seven keys the same way).
 */
const WATCHED_KEYS: readonly string[] = [...PLUGIN_DATA_KEYS, ...LEGACY_PLUGIN_DATA_KEYS];

export interface ModifyPluginDataOptions {
  /** How many read-update-write rounds to try. Default {@link MAX_MODIFY_ATTEMPTS}. */
  readonly attempts?: number;
  /** Passed to every RPC; an abort stops between rounds too. */
  readonly signal?: AbortSignal;
  /**
   * The stored map as this caller last wrote or read it. The first round
   * uses it instead of reading (one RPC saved); if it is stale the write
   * fails its compare and the next round reads as usual.
   */
  readonly known?: PluginData;
  /** Called on every compare failure (for metrics). */
  readonly onConflict?: () => void;
}

export interface ModifyPluginDataResult {
  /** The record as stored after the call (`undefined`: none). */
  readonly data: EmailPluginData | undefined;
  /** Whether this call wrote it. */
  readonly changed: boolean;
  /** The stored map behind `data`, to pass as `known` next time. */
  readonly raw?: PluginData;
}

/**
 * Receives the stored record (`undefined` when the request has none) and
 * returns the new one, or `undefined` to leave it as is. It may run several
 * times, so it must not act on the world.
 */
export type PluginDataUpdate = (
  current: EmailPluginData | undefined,
) => EmailPluginData | undefined;

/**
 * Applies `update` to the plugin data of request `requestId` atomically.
 *
 * The write sets the keys whose value changes, and `""` for each stored key
 * the new record no longer has (that deletes it). It expects every key that
 * was read or is written, and every key the Go plugin knows, to still hold
 * the value read (`""` when absent), so a create succeeds only if nobody
 * created first. A compare failure re-reads and re-applies `update`; after
 * `attempts` rounds a `CompareFailedError` is thrown (the last one as its
 * cause). Other errors, including the update's own, are thrown at once.
 * Nothing is written when the new record encodes to what is stored.
 */
export async function modifyPluginData(
  client: Pick<TeleportClient, "getPluginData" | "updatePluginData">,
  requestId: string,
  update: PluginDataUpdate,
  opts: ModifyPluginDataOptions = {},
): Promise<ModifyPluginDataResult> {
  const attempts = opts.attempts ?? MAX_MODIFY_ATTEMPTS;
  if (!Number.isSafeInteger(attempts) || attempts < 1) {
    throw new RangeError(`Cannot modify plugin data: attempts must be at least 1, got ${attempts}`);
  }
  const { signal } = opts;

  let lastError: CompareFailedError | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    signal?.throwIfAborted();
    const guessed = attempt === 1 && opts.known !== undefined;
    const stored = normalise(guessed ? opts.known : await client.getPluginData(requestId, signal));
    const current = stored === undefined ? undefined : decodePluginData(stored);
    const next = update(current);
    // A guess is only good for writing: "no change" must be decided on what is stored.
    if (next === undefined && guessed) continue;
    if (next === undefined) return { data: current, changed: false, ...raw(stored) };

    const { set, expect } = planWrite(stored ?? {}, encodePluginData(next), WATCHED_KEYS);
    if (Object.keys(set).length === 0) {
      if (guessed) continue;
      return { data: current, changed: false, ...raw(stored) };
    }

    try {
      await client.updatePluginData(requestId, set, expect, signal);
    } catch (error) {
      if (!(error instanceof CompareFailedError)) throw error;
      lastError = error;
      if (!guessed) opts.onConflict?.();
      continue;
    }
    const written = normalise(applySet(stored ?? {}, set));
    return {
      data: written === undefined ? undefined : decodePluginData(written),
      changed: true,
      ...raw(written),
    };
  }
  throw new CompareFailedError(
    `Cannot update plugin data of request "${requestId}": it changed under us ${attempts} times`,
    { cause: lastError },
  );
}

/**
 * What to send for a change from `stored` to `wanted`: `set` holds the keys
 * whose value changes (`""` deletes); `expect` holds every key read, written
 * or `watched`, with its value as read (`""` when absent).
 */
export function planWrite(
  stored: PluginData,
  wanted: PluginData,
  watched: readonly string[] = [],
): { set: Record<string, string>; expect: Record<string, string> } {
  const set: Record<string, string> = {};
  const expect: Record<string, string> = {};
  for (const key of watched) expect[key] = "";
  for (const [key, value] of Object.entries(stored)) {
    if (value === "") continue;
    expect[key] = value;
    if (!Object.hasOwn(wanted, key) || wanted[key] === "") set[key] = "";
  }
  for (const [key, value] of Object.entries(wanted)) {
    if (value === "") continue;
    const old = Object.hasOwn(stored, key) ? stored[key] ?? "" : "";
    expect[key] = old;
    if (value !== old) set[key] = value;
  }
  return { set, expect };
}

function raw(stored: PluginData | undefined): { raw?: PluginData } {
  return stored === undefined ? {} : { raw: stored };
}

/** A record with no non-empty key is no record. */
function normalise(data: PluginData | undefined): PluginData | undefined {
  if (data === undefined) return undefined;
  return Object.values(data).some((v) => v !== "") ? data : undefined;
}

function applySet(stored: PluginData, set: PluginData): Record<string, string> {
  const out: Record<string, string> = { ...stored };
  for (const [key, value] of Object.entries(set)) {
    if (value === "") delete out[key];
    else out[key] = value;
  }
  return out;
}
