/**
 * The plugin-data codec: the string map stored on an access request under
 * plugin name `email` ⇄ {@link EmailPluginData}. Byte-compatible with the Go
 * plugin, which may read and write the same record (rolling upgrades, HA):
 * its keys keep their meaning, keys it does not know survive a round trip.
 */
import type { PluginData } from "../teleport/types.ts";

/** How a request ended; `""` = not yet. `PROMOTED` is ours, the others the Go plugin's. */
export type ResolutionTag = "APPROVED" | "DENIED" | "EXPIRED" | "PROMOTED";

/**
 * The stored resolution: `""`, a {@link ResolutionTag}, or a value written by
 * a newer peer, kept as is (any non-empty value means "resolved").
 */
export type Resolution = "" | ResolutionTag | (string & Record<never, never>);

/** One "new request" email: the root of a thread that replies refer to. */
export interface EmailThread {
  readonly email: string;
  /**
   * When it was sent, as text. Never parsed by the Go plugin; it writes Go's
   * `time.Time.String()` (see {@link formatThreadTimestamp}).
   */
  readonly timestamp: string;
  /** The root Message-ID without angle brackets; `""` for legacy records. */
  readonly messageId: string;
}

export interface EmailPluginData {
  /** Key `user`: the requester, as when the request was created. */
  readonly user: string;
  /** Key `roles`, comma-joined. */
  readonly roles: readonly string[];
  /** Key `request_reason`. */
  readonly requestReason: string;
  /** Key `reviews_count`: reviews already sent as replies; absent = 0. */
  readonly reviewsCount: number;
  /** Key `resolution`. */
  readonly resolution: Resolution;
  /** Key `resolve_reason`. */
  readonly resolveReason: string;
  /** Key `email_threads` (plus the legacy single-thread keys `email` + `timestamp`). */
  readonly emailThreads: readonly EmailThread[];
  /** Every other non-empty key, written back unchanged. */
  readonly extra: Readonly<Record<string, string>>;
}

/** The Go plugin's keys, in the order our encoder writes them. */
export const PLUGIN_DATA_KEYS = [
  "user",
  "roles",
  "request_reason",
  "reviews_count",
  "resolution",
  "resolve_reason",
  "email_threads",
] as const;

/** Keys of the single-thread format that preceded `email_threads`. */
const LEGACY_EMAIL_KEY = "email";
const LEGACY_TIMESTAMP_KEY = "timestamp";
export const LEGACY_PLUGIN_DATA_KEYS = [LEGACY_EMAIL_KEY, LEGACY_TIMESTAMP_KEY] as const;

const KNOWN_KEYS: ReadonlySet<string> = new Set(PLUGIN_DATA_KEYS);

/** An empty record: what a request without plugin data decodes to. */
export const EMPTY_PLUGIN_DATA: EmailPluginData = Object.freeze({
  user: "",
  roles: Object.freeze([]) as readonly string[],
  requestReason: "",
  reviewsCount: 0,
  resolution: "",
  resolveReason: "",
  emailThreads: Object.freeze([]) as readonly EmailThread[],
  extra: Object.freeze({}),
});

/** Decodes a stored map; `undefined` (no data) decodes to {@link EMPTY_PLUGIN_DATA}. */
export function decodePluginData(data: PluginData | undefined): EmailPluginData {
  if (data === undefined) return EMPTY_PLUGIN_DATA;
  const get = (key: string): string => (Object.hasOwn(data, key) ? data[key] ?? "" : "");

  const emailThreads: EmailThread[] = [];
  const extra: Record<string, string> = {};
  const legacyEmail = get(LEGACY_EMAIL_KEY);
  const legacyTimestamp = get(LEGACY_TIMESTAMP_KEY);
  // As in the Go plugin, the legacy thread needs both keys and comes first.
  // Once read into a thread it is written back as part of `email_threads`;
  // a lone legacy key is not a thread and round-trips as an unknown key.
  const legacyThread = legacyEmail !== "" && legacyTimestamp !== "";
  if (legacyThread) {
    emailThreads.push({ email: legacyEmail, timestamp: legacyTimestamp, messageId: "" });
  }
  emailThreads.push(...decodeThreads(get("email_threads")));

  for (const [key, value] of Object.entries(data)) {
    if (value === "" || KNOWN_KEYS.has(key)) continue;
    if (legacyThread && (key === LEGACY_EMAIL_KEY || key === LEGACY_TIMESTAMP_KEY)) continue;
    extra[key] = value;
  }

  const roles = get("roles");
  return {
    user: get("user"),
    roles: roles === "" ? [] : roles.split(","),
    requestReason: get("request_reason"),
    reviewsCount: decodeCount(get("reviews_count")),
    resolution: get("resolution"),
    resolveReason: get("resolve_reason"),
    emailThreads,
    extra,
  };
}

/**
 * Encodes for `UpdatePluginData`: the Go plugin's keys in its order, then the
 * `extra` keys sorted; keys with empty values are left out. Throws a
 * `RangeError` for a thread that cannot be written in the `a/b/c,…` format.
 */
export function encodePluginData(d: EmailPluginData): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (key: string, value: string) => {
    if (value !== "") out[key] = value;
  };
  put("user", d.user);
  put("roles", d.roles.join(","));
  put("request_reason", d.requestReason);
  put("reviews_count", encodeCount(d.reviewsCount));
  put("resolution", d.resolution);
  put("resolve_reason", d.resolveReason);
  put("email_threads", d.emailThreads.map(encodeThread).join(","));
  for (const key of Object.keys(d.extra).sort()) {
    if (KNOWN_KEYS.has(key)) continue;
    put(key, d.extra[key] ?? "");
  }
  return out;
}

/**
 * A thread timestamp as the Go plugin writes it (`time.Time.String()` of a
 * UTC time, without the monotonic clock reading):
 * `2026-11-22 10:00:00.5 +0000 UTC`.
 */
export function formatThreadTimestamp(date: Date): string {
  const iso = date.toISOString(); // 2026-11-22T10:00:00.500Z
  const day = iso.slice(0, 10);
  const time = iso.slice(11, 19);
  const fraction = iso.slice(20, 23).replace(/0+$/, "");
  return `${day} ${time}${fraction === "" ? "" : `.${fraction}`} +0000 UTC`;
}

/**
 * Reads a thread timestamp: Go's `time.Time.String()` text (any offset, with
 * or without the `m=±…` suffix) or RFC 3339. `undefined` when unreadable.
 */
export function parseThreadTimestamp(text: string): Date | undefined {
  const m =
    /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ?(Z|[+-]\d{2}:?\d{2})(?: [A-Za-z0-9+-]+)?(?: m=[+-]\d+(?:\.\d+)?)?$/
      .exec(text.trim());
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, frac = "", zone = "Z"] = m;
  const ms = Number(frac.padEnd(3, "0").slice(0, 3));
  let offsetMinutes = 0;
  if (zone !== "Z") {
    const digits = zone.replace(":", "");
    const sign = digits.startsWith("-") ? -1 : 1;
    offsetMinutes = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  }
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  const date = new Date(utc - offsetMinutes * 60_000);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Strips the angle brackets a Message-ID may be stored with (Go + Mailgun stored them). */
export function bareMessageId(id: string): string {
  return id.trim().replace(/^<+/, "").replace(/>+$/, "");
}

/** Reads a comma-joined `<email>/<timestamp>/<message-id>` list (the `email_threads` format). */
export function decodeThreadList(text: string): EmailThread[] {
  return decodeThreads(text);
}

/** Writes threads in the `email_threads` format. */
export function encodeThreadList(threads: readonly EmailThread[]): string {
  return threads.map(encodeThread).join(",");
}

function decodeThreads(text: string): EmailThread[] {
  const threads: EmailThread[] = [];
  if (text === "") return threads;
  for (const entry of text.split(",")) {
    const parts = entry.split("/");
    // The Go plugin reads only entries of exactly three parts. An address
    // may contain "/" while our timestamps and Message-IDs never do, so
    // longer entries are read right to left instead of being dropped.
    if (parts.length < 3) continue;
    const messageId = parts.pop() ?? "";
    const timestamp = parts.pop() ?? "";
    const email = parts.join("/");
    if (email === "") continue;
    threads.push({ email, timestamp, messageId: bareMessageId(messageId) });
  }
  return threads;
}

function encodeThread(t: EmailThread): string {
  const fields: [string, string, string][] = [
    ["email address", t.email, ","],
    ["timestamp", t.timestamp, ",/"],
    ["message id", t.messageId, ",/"],
  ];
  for (const [name, value, forbidden] of fields) {
    for (const ch of forbidden) {
      if (value.includes(ch)) {
        throw new RangeError(`Cannot store email thread: ${name} "${value}" contains "${ch}"`);
      }
    }
  }
  if (t.email === "") throw new RangeError("Cannot store email thread: email address is empty");
  return `${t.email}/${t.timestamp}/${bareMessageId(t.messageId)}`;
}

function decodeCount(text: string): number {
  // Go's strconv.Atoi, with anything unreadable or negative meaning 0.
  if (!/^[+-]?\d+$/.test(text)) return 0;
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

function encodeCount(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`Cannot store reviews count ${n}: not a non-negative integer`);
  }
  // The Go plugin writes nothing for 0.
  return n === 0 ? "" : String(n);
}
