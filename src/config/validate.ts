/**
 * Turns the parsed TOML document into a `Config`: applies defaults, reads the
 * secret and CA files once, and checks every rule of SPEC §2. Every problem
 * is collected and thrown together as one `ConfigError`; things that are
 * merely odd (unknown keys, deprecated aliases, ignored settings) become
 * warnings for the caller to log once logging is up.
 *
 * Messages start with the dotted TOML key, quote the offending value and
 * never contain a secret: values of `smtp.password` and
 * `mailgun.private_key` and the contents of any file are never shown.
 */
import { X509Certificate } from "node:crypto";
import { isPlainAddress, isRecipientAddress, parseMailbox } from "../lib/address.ts";
import { parseDuration } from "../lib/duration.ts";
import { exposedFileWarning } from "../lib/file_mode.ts";
import { isLoopbackHost, parseHostPort, withoutUserInfo } from "../lib/net_address.ts";
import { KIB, MIB } from "../lib/read_file.ts";
import { Secret } from "../lib/secret.ts";
import { ConfigError, describeReadError } from "./error.ts";
import { validateTemplates } from "./templates.ts";
import {
  type AccessExpiryConfig,
  type Config,
  type EscalationConfig,
  type EscalationLevelConfig,
  type LoadedConfig,
  type LogConfig,
  type LogSeverity,
  type MailgunConfig,
  type SmtpConfig,
  STARTTLS_POLICIES,
  type StarttlsPolicy,
  type TeleportConfig,
} from "./types.ts";

export { ConfigError } from "./error.ts";

/** What validation needs from the outside world. */
export interface ConfigDeps {
  /**
   * Reads a whole text file (secret files, `smtp.ca_file`) of at most `limit`
   * bytes; throws `Deno.errors.*`, or an error whose message says why the
   * file was refused ("is larger than the 64 KiB limit").
   */
  readTextFile(path: string, limit: number): string;
  /** The permission bits of a file (`stat`'s mode), null when unknown; no check without it. */
  fileMode?(path: string): number | null;
}

/** `teleport.addr` when neither it nor `auth_server` is set. */
const DEFAULT_TELEPORT_ADDR = "localhost:3025";
/** Nanoseconds in a millisecond: an integer `refresh_identity_interval` is nanoseconds. */
const NS_PER_MS = 1_000_000;
/** `teleport.refresh_identity_interval` when unset: one minute, as in the Go plugin. */
const DEFAULT_REFRESH_IDENTITY_INTERVAL_MS = 60_000;
/**
 * Shortest `teleport.refresh_identity_interval`: tbot renews certificates in
 * minutes, so re-reading more than once a second only burns CPU ("1ns" spun).
 */
const MIN_REFRESH_IDENTITY_INTERVAL_MS = 1_000;
/** Largest secret file (`smtp.password_file`, `mailgun.private_key_file`): a key is a line. */
const SECRET_FILE_LIMIT = 64 * KIB;
/** Largest `smtp.ca_file`: a generous CA bundle (the Mozilla one is ~220 KiB). */
const CA_FILE_LIMIT = 4 * MIB;
/** `smtp.port` when unset: submission with STARTTLS. */
const DEFAULT_SMTP_PORT = 587;
/** The `smtp.port` of implicit TLS (RFC 8314), where the STARTTLS policy does not apply. */
const IMPLICIT_TLS_PORT = 465;
/** `mailgun.api_base` when unset: Mailgun's US region. */
const DEFAULT_MAILGUN_API_BASE = "https://api.mailgun.net";
/** `reminders.max` when unset. */
const DEFAULT_REMINDERS_MAX = 3;
/** `log.output` when unset. */
const DEFAULT_LOG_OUTPUT = "stderr";

/** Every key each section accepts; `role_to_recipients` takes any role name. */
export const CONFIG_KEYS = {
  teleport: [
    "addr",
    "auth_server",
    "identity",
    "refresh_identity",
    "refresh_identity_interval",
    "client_key",
    "client_crt",
    "root_cas",
    "proxy_ca_file",
  ],
  mailgun: ["domain", "private_key", "private_key_file", "api_base", "allow_insecure_http"],
  smtp: [
    "host",
    "port",
    "username",
    "password",
    "password_file",
    "starttls_policy",
    "ca_file",
    "allow_insecure_auth",
  ],
  delivery: ["sender", "recipients", "notify_requester", "max_recipients", "catch_up_window"],
  role_to_recipients: [],
  log: ["output", "severity", "format"],
  status: ["listen_addr"],
  reminders: ["after", "every", "max"],
  escalation: ["after", "recipients", "role_to_recipients", "levels"],
  access_expiry: ["warn_before"],
  // Also one sub-table per email kind, checked by templates.ts.
  templates: ["subject", "time_zone"],
} as const satisfies Record<string, readonly string[]>;

type SectionName = keyof typeof CONFIG_KEYS;

/**
 * `log.severity` spellings (lower-cased) accepted by the Go plugin. Its
 * `trace` is more verbose than `debug`; this plugin has nothing below debug.
 */
const SEVERITIES: Readonly<Record<string, LogSeverity>> = {
  trace: "debug",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  err: "error",
  error: "error",
};

/**
 * `log.output = "syslog"`: the Go plugin writes to the syslog socket; this
 * plugin writes to stderr (which systemd's journal collects) instead of
 * creating a file named "syslog" in its working directory.
 */
const SYSLOG_OUTPUT = "syslog";

/** `log.output` aliases accepted by the Go plugin. */
const OUTPUT_ALIASES: Readonly<Record<string, string>> = {
  stderr: "stderr",
  error: "stderr",
  "2": "stderr",
  stdout: "stdout",
  out: "stdout",
  "1": "stdout",
};

const PEM_CERTIFICATE_MARKER = "-----BEGIN CERTIFICATE-----";
const PEM_CERTIFICATE_END = "-----END CERTIFICATE-----";

/**
 * What is wrong with a CA file's text, if anything: no certificate, or one
 * that does not parse (found now, not at the first TLS handshake, where the
 * error would not name the file).
 */
function caFileProblem(path: string, text: string): string | undefined {
  if (!text.includes(PEM_CERTIFICATE_MARKER)) return `file ${quote(path)} holds no PEM certificate`;
  let number = 0;
  for (let at = text.indexOf(PEM_CERTIFICATE_MARKER); at >= 0;) {
    number++;
    const end = text.indexOf(PEM_CERTIFICATE_END, at);
    if (end < 0) return `file ${quote(path)}: certificate ${number} has no END line`;
    const pem = text.slice(at, end + PEM_CERTIFICATE_END.length);
    try {
      new X509Certificate(pem);
    } catch {
      return `file ${quote(path)}: certificate ${number} is not a readable X.509 certificate`;
    }
    at = text.indexOf(PEM_CERTIFICATE_MARKER, end);
  }
  return undefined;
}

type Table = Record<string, unknown>;

/** A value that was present but wrong; the problem is already recorded. */
const INVALID = Symbol("invalid");
type Invalid = typeof INVALID;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

function kindOf(value: unknown): string {
  if (typeof value === "string") return "a string";
  if (typeof value === "boolean") return "a boolean";
  if (typeof value === "number") return Number.isInteger(value) ? "an integer" : "a float";
  if (typeof value === "bigint") return "an integer";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date-time";
  if (isTable(value)) return "a table";
  return typeof value;
}

/** Characters that do not show: C1 controls, space-likes other than U+0020, format characters. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/gu;

/**
 * A scalar as it appears in a message: JSON-quoted, so control characters
 * stay visible, and characters that do not show (U+00A0, U+200B...) escaped.
 */
function quote(value: string | number | boolean | bigint): string {
  if (typeof value !== "string") return `"${value}"`;
  return JSON.stringify(value).replace(
    INVISIBLE,
    (char) => {
      const code = char.codePointAt(0)!;
      const hex = code.toString(16);
      return code > 0xffff ? `\\u{${hex}}` : `\\u${hex.padStart(4, "0")}`;
    },
  );
}

/** The kind of a wrong-typed value, plus the value itself unless it may be a secret. */
function describe(value: unknown, secret = false): string {
  const kind = kindOf(value);
  const scalar = typeof value === "string" || typeof value === "number" ||
    typeof value === "boolean" || typeof value === "bigint";
  return scalar && !secret ? `${kind} ${quote(value)}` : kind;
}

/** A TOML key as written in a dotted path: bare when possible, else quoted. */
function keyName(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/** `a, b or c` */
function orList(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

/** Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`. */
function editDistance(a: string, b: string): number {
  // Optimal string alignment: a transposed pair ("hots" for "host") costs one edit.
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known name an unknown one is most likely a typo of, if any is close enough. */
function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate);
    // At most two edits, and fewer than half the word: "hots" → "host", but "ca" ↛ "port".
    if (distance <= 2 && distance * 2 < candidate.length && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** The sections the Go plugin reads. */
const GO_SECTIONS: readonly SectionName[] = [
  "teleport",
  "mailgun",
  "smtp",
  "delivery",
  "role_to_recipients",
  "log",
];
/** Keys whose Go struct field has no `toml` tag: Go also finds them by the field's name. */
const GO_UNTAGGED_KEYS: Readonly<Partial<Record<SectionName, readonly string[]>>> = {
  mailgun: ["domain"],
  smtp: ["host", "port", "username", "password"],
  delivery: ["sender", "recipients"],
};

/**
 * The Go plugin's TOML decoder (go-toml v1) finds a key as its struct names
 * it (the tag, or the field name when there is none), lower-cased or
 * upper-cased: `[SMTP]`, `HOST` and `Host` are read there as `[smtp]` and
 * `host`. The same spellings are folded here into ours, in Go's sections and
 * for the keys they know (role names stay as written); a key given in two
 * spellings is read in the one go-toml would read, the other ignored with
 * a warning.
 */
function foldGoSpellings(raw: Table, review: Review): Table {
  const fold = (
    table: Table,
    keys: readonly string[],
    untagged: readonly string[],
    prefix: string,
  ) => {
    /** Each key's spellings in the order go-toml tries them (the first one present is read). */
    const spellings = new Map<string, string[]>();
    const oursOf = new Map<string, string>();
    for (const key of keys) {
      const tried = untagged.includes(key)
        ? [key.charAt(0).toUpperCase() + key.slice(1), key, key.toUpperCase()]
        : [key, key.toUpperCase()];
      spellings.set(key, tried);
      for (const spelling of tried) oursOf.set(spelling, key);
    }
    const out: Table = {};
    for (const [key, value] of Object.entries(table)) {
      const ours = oursOf.get(key);
      if (ours === undefined) {
        out[key] = value;
        continue;
      }
      const read = spellings.get(ours)!.find((spelling) => Object.hasOwn(table, spelling))!;
      if (key === read) out[ours] = value;
      else {
        review.warning(
          `${prefix}${keyName(key)}`,
          `ignored: also set as ${prefix}${keyName(read)}, which is read (as the Go plugin does)`,
        );
      }
    }
    return out;
  };
  const folded = fold(raw, GO_SECTIONS, [], "");
  for (const name of GO_SECTIONS) {
    const section = folded[name];
    if (name === "role_to_recipients" || !isTable(section)) continue;
    folded[name] = fold(section, CONFIG_KEYS[name], GO_UNTAGGED_KEYS[name] ?? [], `${name}.`);
  }
  return folded;
}

/** Collects problems (fatal) and warnings (logged) while walking the document. */
class Review {
  readonly problems: string[] = [];
  readonly warnings: string[] = [];

  problem(key: string, text: string): void {
    this.problems.push(`${key}: ${text}`);
  }

  warning(key: string, text: string): void {
    this.warnings.push(`${key}: ${text}`);
  }

  /** The `[name]` section: `undefined` when absent, `INVALID` when not a table. */
  section(raw: Table, name: SectionName): Table | undefined | Invalid {
    if (!Object.hasOwn(raw, name)) return undefined;
    const value = raw[name];
    if (!isTable(value)) {
      this.problem(name, `must be a table ([${name}]), got ${describe(value)}`);
      return INVALID;
    }
    const known: readonly string[] = CONFIG_KEYS[name];
    if (name !== "role_to_recipients") {
      for (const key of Object.keys(value)) {
        if (known.includes(key)) continue;
        const guess = closest(key, known);
        const hint = guess === undefined ? "" : ` (did you mean ${name}.${guess}?)`;
        this.warning(`${name}.${keyName(key)}`, `unknown key, ignored${hint}`);
      }
    }
    return value;
  }

  /** An optional string; an empty string counts as unset, as in the Go plugin. */
  string(table: Table, section: string, key: string, secret = false): string | undefined | Invalid {
    if (!Object.hasOwn(table, key)) return undefined;
    const value = table[key];
    if (typeof value !== "string") {
      this.problem(`${section}.${key}`, `must be a string, got ${describe(value, secret)}`);
      return INVALID;
    }
    return value === "" ? undefined : value;
  }

  /** An optional boolean; `undefined` when unset. */
  boolean(table: Table, section: string, key: string): boolean | undefined | Invalid {
    if (!Object.hasOwn(table, key)) return undefined;
    const value = table[key];
    if (typeof value !== "boolean") {
      this.problem(`${section}.${key}`, `must be a boolean, got ${describe(value)}`);
      return INVALID;
    }
    return value;
  }

  /** Reads a secret file once; its contents, trimmed, must not be empty. */
  secretFile(deps: ConfigDeps, key: string, path: string): Secret | Invalid {
    let text: string;
    try {
      text = deps.readTextFile(path, SECRET_FILE_LIMIT);
    } catch (error) {
      this.problem(key, `cannot read ${quote(path)}: ${describeReadError(error)}`);
      return INVALID;
    }
    const value = text.trim();
    if (value === "") {
      this.problem(key, `file ${quote(path)} is empty`);
      return INVALID;
    }
    let mode: number | null = null;
    try {
      mode = deps.fileMode?.(path) ?? null;
    } catch {
      // Just read: a failing stat says nothing about its secrecy.
    }
    const exposed = exposedFileWarning(path, mode);
    if (exposed !== undefined) {
      this.warning(key, `file ${quote(path)} holds a secret but ${exposed}`);
    }
    return new Secret(value);
  }
}

function validateTeleport(
  raw: Table,
  deps: ConfigDeps,
  review: Review,
): TeleportConfig | undefined {
  const table = review.section(raw, "teleport");
  if (table === INVALID) return undefined;
  const t = table ?? {};
  const str = (key: string) => review.string(t, "teleport", key);

  const addrValue = str("addr");
  const authServer = str("auth_server");
  let addr = addrValue === INVALID ? undefined : addrValue;
  if (authServer !== undefined && authServer !== INVALID) {
    review.warning("teleport.auth_server", "deprecated, use teleport.addr instead");
    if (addr === undefined && addrValue !== INVALID) {
      addr = authServer;
    } else if (addr !== undefined && addr !== authServer) {
      // As the Go plugin: teleport.addr wins.
      review.warning(
        "teleport.auth_server",
        `ignored: teleport.addr is set (${quote(addr)} is used, not ${quote(authServer)})`,
      );
    }
  }

  if (addr !== undefined && parseHostPort(addr) === undefined) {
    review.problem(
      addr === addrValue ? "teleport.addr" : "teleport.auth_server",
      `must be host:port (an IPv6 host in brackets, a port from 1 to 65535), ` +
        `e.g. "teleport.example.com:443", got ${quote(addr)}`,
    );
  }

  const identity = str("identity");
  const triple = {
    client_key: str("client_key"),
    client_crt: str("client_crt"),
    root_cas: str("root_cas"),
  };
  const tripleKeys = Object.keys(triple) as Array<keyof typeof triple>;
  const given = tripleKeys.filter((key) => triple[key] !== undefined);
  const missing = tripleKeys.filter((key) => triple[key] === undefined);
  const dotted = (keys: readonly string[]) => keys.map((key) => `teleport.${key}`).join(", ");

  let credentials: TeleportConfig["credentials"] | undefined;
  if (identity === INVALID) {
    // Already reported; the triple cannot be judged without knowing the identity.
  } else if (identity !== undefined) {
    credentials = { kind: "identity", identityFile: identity };
    if (given.length > 0) review.warning(dotted(given), "ignored because teleport.identity is set");
  } else if (given.length === 0) {
    review.problem(
      "teleport.identity",
      "is required (or set all of teleport.client_key, teleport.client_crt and teleport.root_cas)",
    );
  } else if (missing.length > 0) {
    const present = dotted(given).replace(/, ([^,]*)$/, " and $1");
    review.problem(dotted(missing), `required together with ${present} (or use teleport.identity)`);
  } else {
    const { client_key: clientKey, client_crt: clientCrt, root_cas: rootCas } = triple;
    if (
      typeof clientKey === "string" && typeof clientCrt === "string" && typeof rootCas === "string"
    ) {
      credentials = { kind: "files", clientKey, clientCrt, rootCas };
    }
  }

  let refreshIdentity = false;
  if (Object.hasOwn(t, "refresh_identity")) {
    const value = t["refresh_identity"];
    if (typeof value !== "boolean") {
      review.problem("teleport.refresh_identity", `must be a boolean, got ${describe(value)}`);
    } else {
      refreshIdentity = value;
      if (value && identity === undefined) {
        review.problem("teleport.refresh_identity", "requires teleport.identity");
      }
    }
  }

  let refreshIdentityIntervalMs = DEFAULT_REFRESH_IDENTITY_INTERVAL_MS;
  if (Object.hasOwn(t, "refresh_identity_interval")) {
    const key = "teleport.refresh_identity_interval";
    const value = t["refresh_identity_interval"];
    if (typeof value !== "string" && !(typeof value === "number" && Number.isInteger(value))) {
      review.problem(
        key,
        `must be a duration string such as "1m" (or an integer of nanoseconds), got ${
          describe(value)
        }`,
      );
    } else {
      try {
        // An integer is nanoseconds, as Go's TOML decoder reads it into a time.Duration.
        refreshIdentityIntervalMs = typeof value === "number"
          ? value / NS_PER_MS
          : parseDuration(value);
        const shown = typeof value === "number" ? `${value} (nanoseconds)` : quote(value);
        if (refreshIdentityIntervalMs === 0) {
          review.problem(key, `must be longer than zero, got ${shown}`);
        } else if (refreshIdentityIntervalMs < MIN_REFRESH_IDENTITY_INTERVAL_MS) {
          review.problem(
            key,
            "must be at least 1s (re-reading the identity file more often only burns CPU), " +
              `got ${shown}`,
          );
        }
      } catch (error) {
        review.problem(key, lowerFirst((error as Error).message));
      }
    }
  }

  // CAs of an L7 load balancer in front of the Proxy (the connection upgrade), besides the system's.
  let proxyCa: string | undefined;
  const proxyCaFile = str("proxy_ca_file");
  if (typeof proxyCaFile === "string") {
    try {
      const text = deps.readTextFile(proxyCaFile, CA_FILE_LIMIT);
      proxyCa = text;
      const problem = caFileProblem(proxyCaFile, text);
      if (problem !== undefined) review.problem("teleport.proxy_ca_file", problem);
    } catch (error) {
      review.problem(
        "teleport.proxy_ca_file",
        `cannot read ${quote(proxyCaFile)}: ${describeReadError(error)}`,
      );
    }
  }

  if (credentials === undefined) return undefined;
  return {
    addr: addr ?? DEFAULT_TELEPORT_ADDR,
    credentials,
    refreshIdentity,
    refreshIdentityIntervalMs,
    ...(proxyCa === undefined ? {} : { proxyCa }),
  };
}

/** Resolves `<key>` / `<key>_file` into a secret; `undefined` when neither is set. */
function secretSetting(
  table: Table,
  section: string,
  key: string,
  deps: ConfigDeps,
  review: Review,
): Secret | undefined | Invalid {
  const value = review.string(table, section, key, true);
  const file = review.string(table, section, `${key}_file`);
  if (value === INVALID || file === INVALID) return INVALID;
  if (value !== undefined) {
    if (file !== undefined) {
      review.warning(`${section}.${key}_file`, `ignored because ${section}.${key} is set`);
    }
    return new Secret(value);
  }
  if (file !== undefined) return review.secretFile(deps, `${section}.${key}_file`, file);
  return undefined;
}

function validateSmtp(table: Table, deps: ConfigDeps, review: Review): SmtpConfig | undefined {
  let ok = true;
  const host = review.string(table, "smtp", "host");
  if (host === undefined) review.problem("smtp.host", "is required");

  let port = DEFAULT_SMTP_PORT;
  if (Object.hasOwn(table, "port")) {
    const value = table["port"];
    const expected = "must be an integer from 1 to 65535 (0: the default, 587)";
    if (value === 0) {
      // The Go plugin reads 0 as unset (so does a Helm value rendered from null).
    } else if (
      typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535
    ) {
      port = value;
    } else {
      ok = false;
      const got = typeof value === "number" ? quote(value) : describe(value);
      review.problem("smtp.port", `${expected}, got ${got}`);
    }
  }

  const username = review.string(table, "smtp", "username");
  let password: Secret | undefined | Invalid;
  if (username === undefined) {
    const stray = ["password", "password_file"].filter((key) =>
      typeof review.string(table, "smtp", key, key === "password") === "string"
    );
    if (stray.length > 0) {
      review.warning(
        stray.map((key) => `smtp.${key}`).join(", "),
        "ignored because smtp.username is not set (no SMTP authentication)",
      );
    }
  } else if (username !== INVALID) {
    password = secretSetting(table, "smtp", "password", deps, review);
    if (password === undefined) {
      review.problem(
        "smtp.password",
        "is required when smtp.username is set (or set smtp.password_file)",
      );
    }
  }

  let starttlsPolicy: StarttlsPolicy = "mandatory";
  const policy = review.string(table, "smtp", "starttls_policy");
  if (typeof policy === "string") {
    const known = STARTTLS_POLICIES.find((candidate) => candidate === policy);
    if (known === undefined) {
      ok = false;
      review.problem(
        "smtp.starttls_policy",
        `must be one of ${orList(STARTTLS_POLICIES)}, got ${quote(policy)}`,
      );
    } else {
      starttlsPolicy = known;
    }
  }

  let ca: string | undefined;
  const caFile = review.string(table, "smtp", "ca_file");
  if (typeof caFile === "string") {
    try {
      ca = deps.readTextFile(caFile, CA_FILE_LIMIT);
      const problem = caFileProblem(caFile, ca);
      if (problem !== undefined) {
        ok = false;
        review.problem("smtp.ca_file", problem);
      }
    } catch (error) {
      ok = false;
      review.problem("smtp.ca_file", `cannot read ${quote(caFile)}: ${describeReadError(error)}`);
    }
  }

  const allowInsecureAuth = review.boolean(table, "smtp", "allow_insecure_auth");
  if (allowInsecureAuth === INVALID) ok = false;
  else if (ok) {
    // Credentials only go out when a username is set; the session is TLS from the first
    // byte on port 465, and with a mandatory STARTTLS before AUTH can be sent.
    const key = "smtp.allow_insecure_auth";
    const tlsOnly = port === IMPLICIT_TLS_PORT || starttlsPolicy === "mandatory";
    if (allowInsecureAuth === true) {
      if (username === undefined) {
        review.warning(key, "has no effect without smtp.username");
      } else if (tlsOnly) {
        const why = port === IMPLICIT_TLS_PORT
          ? "on port 465 (implicit TLS)"
          : `with starttls_policy ${quote(starttlsPolicy)}`;
        review.warning(key, `has no effect ${why} (the password only travels over TLS)`);
      } else {
        review.warning(
          key,
          "is true: the SMTP password is sent unencrypted whenever the server offers no STARTTLS " +
            "or refuses it; anyone on the path can read it",
        );
      }
    } else if (username !== undefined && starttlsPolicy === "disabled" && !tlsOnly) {
      ok = false;
      review.problem(
        "smtp.starttls_policy",
        '"disabled" with smtp.username would send the password unencrypted; ' +
          'use "mandatory" (or port 465), or set smtp.allow_insecure_auth = true to accept that',
      );
    }
  }

  if (
    !ok || typeof host !== "string" || username === INVALID || password === INVALID ||
    policy === INVALID || caFile === INVALID || (username !== undefined && password === undefined)
  ) {
    return undefined;
  }
  return {
    kind: "smtp",
    host,
    port,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    starttlsPolicy,
    ...(ca === undefined ? {} : { ca }),
    allowInsecureAuth: allowInsecureAuth === true,
  };
}

function validateMailgun(
  table: Table,
  deps: ConfigDeps,
  review: Review,
): MailgunConfig | undefined {
  const domain = review.string(table, "mailgun", "domain");
  if (domain === undefined) review.problem("mailgun.domain", "is required");

  const privateKey = secretSetting(table, "mailgun", "private_key", deps, review);
  if (privateKey === undefined) {
    review.problem("mailgun.private_key", "is required (or set mailgun.private_key_file)");
  }

  let apiBase: string | undefined = DEFAULT_MAILGUN_API_BASE;
  const base = review.string(table, "mailgun", "api_base");
  const allowInsecureHttp = review.boolean(table, "mailgun", "allow_insecure_http");
  if (base === INVALID) {
    apiBase = undefined;
  } else if (base !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(base);
    } catch {
      // Reported below.
    }
    // The value is shown without any user info: "https://api:key@…" carries the key.
    const shown = quote(withoutUserInfo(base));
    if (url === undefined || (url.protocol !== "https:" && url.protocol !== "http:")) {
      review.problem("mailgun.api_base", `must be an http(s) URL, got ${shown}`);
      apiBase = undefined;
    } else if (url.username !== "" || url.password !== "") {
      review.problem(
        "mailgun.api_base",
        `must not carry a user name or password, got ${shown}; ` +
          "the key belongs in mailgun.private_key or mailgun.private_key_file",
      );
      apiBase = undefined;
    } else if (
      // Plain http on the loopback interface never leaves the host (a local proxy or test).
      url.protocol === "http:" && !isLoopbackHost(url.hostname) && allowInsecureHttp !== true
    ) {
      if (allowInsecureHttp !== INVALID) {
        review.problem(
          "mailgun.api_base",
          `${shown} would send the API key unencrypted; use https://, ` +
            "or set mailgun.allow_insecure_http = true to accept that",
        );
      }
      apiBase = undefined;
    } else {
      apiBase = base.replace(/\/+$/, "");
    }
  }
  if (allowInsecureHttp === true && apiBase !== undefined) {
    const key = "mailgun.allow_insecure_http";
    if (apiBase.startsWith("http:")) {
      review.warning(
        key,
        `is true: the Mailgun API key is sent unencrypted to ${quote(apiBase)}; ` +
          "anyone on the path can read it",
      );
    } else {
      review.warning(key, `has no effect: mailgun.api_base is ${quote(apiBase)}`);
    }
  }

  if (
    typeof domain !== "string" || !(privateKey instanceof Secret) || apiBase === undefined ||
    allowInsecureHttp === INVALID
  ) {
    return undefined;
  }
  return {
    kind: "mailgun",
    domain,
    privateKey,
    apiBase,
    allowInsecureHttp: allowInsecureHttp === true,
  };
}

function validateMailer(
  raw: Table,
  deps: ConfigDeps,
  review: Review,
): SmtpConfig | MailgunConfig | undefined {
  const hasSmtp = Object.hasOwn(raw, "smtp");
  const hasMailgun = Object.hasOwn(raw, "mailgun");
  if (hasSmtp) {
    if (hasMailgun) {
      review.warning(
        "mailgun",
        "the [mailgun] section is ignored because [smtp] is also present; SMTP is used",
      );
    }
    const table = review.section(raw, "smtp");
    return isTable(table) ? validateSmtp(table, deps, review) : undefined;
  }
  if (hasMailgun) {
    const table = review.section(raw, "mailgun");
    return isTable(table) ? validateMailgun(table, deps, review) : undefined;
  }
  review.problem("smtp", "no mailer configured: add an [smtp] or a [mailgun] section");
  return undefined;
}

function validateSender(delivery: Table | undefined, review: Review): string | undefined {
  const sender = review.string(delivery ?? {}, "delivery", "sender");
  if (sender === INVALID) return undefined;
  if (sender === undefined) {
    review.problem("delivery.sender", "is required");
    return undefined;
  }
  try {
    parseMailbox(sender);
  } catch {
    review.problem(
      "delivery.sender",
      `must be an email address, optionally with a display name, got ${quote(sender)}`,
    );
    return undefined;
  }
  return sender;
}

/** Checks one recipient value; `key` is its dotted path for messages. */
function recipientAddress(value: unknown, key: string, review: Review): string | undefined {
  if (typeof value !== "string") {
    review.problem(key, `must be an email address, got ${describe(value)}`);
    return undefined;
  }
  if (!isRecipientAddress(value)) {
    const why = isPlainAddress(value)
      ? 'no "/": plugin data keeps a thread as <address>/<time>/<id>, as the Go plugin reads it'
      : "no display name or spaces";
    review.problem(key, `must be a plain email address (${why}), got ${quote(value)}`);
    return undefined;
  }
  return value;
}

function recipientList(values: readonly unknown[], key: string, review: Review): string[] {
  return values.flatMap((value, index) =>
    recipientAddress(value, `${key}[${index}]`, review) ?? []
  );
}

function validateRecipients(
  raw: Table,
  delivery: Table | undefined,
  review: Review,
): Record<string, readonly string[]> | undefined {
  const mapping = review.section(raw, "role_to_recipients");
  const roles = isTable(mapping) ? Object.entries(mapping) : [];

  let legacy: unknown[] = [];
  if (delivery !== undefined && Object.hasOwn(delivery, "recipients")) {
    const value = delivery["recipients"];
    review.warning("delivery.recipients", 'deprecated, use role_to_recipients."*" instead');
    if (!Array.isArray(value)) {
      review.problem(
        "delivery.recipients",
        `must be an array of email addresses, got ${describe(value)}`,
      );
      return undefined;
    }
    legacy = value;
  }
  if (mapping === INVALID) return undefined;

  if (legacy.length > 0) {
    if (roles.length > 0) {
      review.problem(
        "delivery.recipients",
        'cannot be used together with [role_to_recipients]; move the addresses to role_to_recipients."*"',
      );
      return undefined;
    }
    const before = review.problems.length;
    const all = recipientList(legacy, "delivery.recipients", review);
    return review.problems.length === before ? { "*": all } : undefined;
  }

  if (roles.length === 0) {
    review.problem(
      "role_to_recipients",
      'is required: map "*" to the recipients of requests for roles without their own entry',
    );
    return undefined;
  }

  const before = review.problems.length;
  const entries: Array<[string, readonly string[]]> = [];
  for (const [role, value] of roles) {
    const key = `role_to_recipients.${JSON.stringify(role)}`;
    if (typeof value === "string") {
      const address = recipientAddress(value, key, review);
      if (address !== undefined) entries.push([role, [address]]);
    } else if (Array.isArray(value)) {
      entries.push([role, recipientList(value, key, review)]);
    } else {
      review.problem(
        key,
        `must be an email address or an array of email addresses, got ${describe(value)}`,
      );
    }
  }
  const wildcard = roles.find(([role]) => role === "*");
  if (wildcard === undefined) {
    review.problem(
      'role_to_recipients."*"',
      "is required: the recipients of requests for roles without their own entry",
    );
  } else if (Array.isArray(wildcard[1]) && wildcard[1].length === 0) {
    review.problem('role_to_recipients."*"', "must list at least one email address");
  }
  if (review.problems.length !== before) return undefined;
  // A null prototype keeps role names such as "constructor" from meeting Object.prototype.
  return Object.setPrototypeOf(Object.fromEntries(entries), null);
}

function validateLog(raw: Table, review: Review): LogConfig | undefined {
  const table = review.section(raw, "log");
  if (table === INVALID) return undefined;
  const t = table ?? {};
  let ok = true;

  let output = DEFAULT_LOG_OUTPUT;
  const outputValue = review.string(t, "log", "output");
  if (outputValue === INVALID) ok = false;
  else if (outputValue === SYSLOG_OUTPUT) {
    output = "stderr";
    review.warning(
      "log.output",
      `"${SYSLOG_OUTPUT}" is written to stderr (under systemd the journal collects it)`,
    );
  } else if (outputValue !== undefined) output = OUTPUT_ALIASES[outputValue] ?? outputValue;

  let severity: LogSeverity = "info";
  const severityValue = review.string(t, "log", "severity");
  if (severityValue === INVALID) ok = false;
  else if (severityValue !== undefined) {
    const known = SEVERITIES[severityValue.toLowerCase()];
    if (known === undefined) {
      ok = false;
      review.problem(
        "log.severity",
        `must be one of DEBUG, INFO, WARN or ERROR (or TRACE, read as DEBUG), got ${
          quote(severityValue)
        }`,
      );
    } else {
      severity = known;
    }
  }

  let format: LogConfig["format"] = "text";
  const formatValue = review.string(t, "log", "format");
  if (formatValue === INVALID) ok = false;
  else if (formatValue !== undefined) {
    const lower = formatValue.toLowerCase();
    if (lower === "text" || lower === "json") {
      format = lower;
    } else {
      ok = false;
      review.problem("log.format", `must be text or json, got ${quote(formatValue)}`);
    }
  }

  return ok ? { output, severity, format } : undefined;
}

/** A positive Go duration at `section.key`; `undefined` when unset, `INVALID` when bad. */
function durationSetting(
  table: Table,
  section: string,
  key: string,
  review: Review,
): number | undefined | Invalid {
  if (!Object.hasOwn(table, key)) return undefined;
  return durationValue(table[key], `${section}.${key}`, review);
}

/** `[reminders]`: off unless `after` is set; `every` defaults to `after`, `max` to 3. */
function validateReminders(raw: Table, review: Review): Config["reminders"] | Invalid {
  const table = review.section(raw, "reminders");
  if (table === INVALID) return INVALID;
  if (table === undefined) return undefined;
  const after = durationSetting(table, "reminders", "after", review);
  const every = durationSetting(table, "reminders", "every", review);
  let max = DEFAULT_REMINDERS_MAX;
  let ok = after !== INVALID && every !== INVALID;
  if (Object.hasOwn(table, "max")) {
    const value = table["max"];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 100) {
      review.problem("reminders.max", `must be an integer from 1 to 100, got ${describe(value)}`);
      ok = false;
    } else max = value;
  }
  if (after === undefined) {
    review.problem("reminders.after", 'is required in [reminders] (e.g. "1h")');
    return INVALID;
  }
  if (!ok || after === INVALID || every === INVALID) return INVALID;
  return { afterMs: after, everyMs: every ?? after, max };
}

/** `delivery.notify_requester`: a boolean, default false. */
function validateNotifyRequester(delivery: Table | undefined, review: Review): boolean | Invalid {
  if (delivery === undefined || !Object.hasOwn(delivery, "notify_requester")) return false;
  const value = delivery["notify_requester"];
  if (typeof value !== "boolean") {
    review.problem("delivery.notify_requester", `must be a boolean, got ${describe(value)}`);
    return INVALID;
  }
  return value;
}

/** Default of `delivery.max_recipients` (the notifier's `DEFAULT_MAX_RECIPIENTS`). */
const DEFAULT_MAX_RECIPIENTS = 100;
/** Largest `delivery.max_recipients`: more threads than this no backend record holds. */
const MAX_MAX_RECIPIENTS = 1_000;
/** Default of `delivery.catch_up_window`: one day. */
const DEFAULT_CATCH_UP_WINDOW_MS = 24 * 3_600_000;

/**
 * `delivery.max_recipients` (1–1000, default 100) and `delivery.catch_up_window`
 * (a Go duration, "0" for none, default "24h").
 */
function validateDeliveryLimits(
  delivery: Table | undefined,
  review: Review,
): { maxRecipients: number; catchUpWindowMs: number } | Invalid {
  let maxRecipients = DEFAULT_MAX_RECIPIENTS;
  let catchUpWindowMs = DEFAULT_CATCH_UP_WINDOW_MS;
  let ok = true;
  if (delivery !== undefined && Object.hasOwn(delivery, "max_recipients")) {
    const value = delivery["max_recipients"];
    if (
      typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
      value > MAX_MAX_RECIPIENTS
    ) {
      review.problem(
        "delivery.max_recipients",
        `must be an integer from 1 to ${MAX_MAX_RECIPIENTS}, got ${describe(value)}`,
      );
      ok = false;
    } else maxRecipients = value;
  }
  if (delivery !== undefined && Object.hasOwn(delivery, "catch_up_window")) {
    const value = delivery["catch_up_window"];
    if (value === "0") catchUpWindowMs = 0;
    else {
      const ms = durationSetting(delivery, "delivery", "catch_up_window", review);
      if (ms === INVALID) ok = false;
      else if (ms !== undefined) catchUpWindowMs = ms;
    }
  }
  return ok ? { maxRecipients, catchUpWindowMs } : INVALID;
}

/** `[status] listen_addr`: `host:port` (IPv6 in brackets); absent = no status listener. */
function validateStatus(raw: Table, review: Review): { listenAddr?: string } | undefined {
  const table = review.section(raw, "status");
  if (table === INVALID) return undefined;
  const value = review.string(table ?? {}, "status", "listen_addr");
  if (value === INVALID) return undefined;
  if (value === undefined) return {};
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    review.problem(
      "status.listen_addr",
      `must be host:port (e.g. "127.0.0.1:9465"), got ${quote(value)}`,
    );
    return undefined;
  }
  return { listenAddr: value };
}

/**
 * Validates a parsed config document (the output of a TOML parser) and
 * reads the files it names through `deps`. Returns the config and the
 * warnings to log; throws `ConfigError` listing every problem found.
 */
export function validateConfig(document: unknown, deps: ConfigDeps): LoadedConfig {
  if (!isTable(document)) {
    throw new ConfigError([`The document must be a TOML table, got ${kindOf(document)}`]);
  }
  const review = new Review();
  const raw = foldGoSpellings(document, review);
  const sections: readonly string[] = Object.keys(CONFIG_KEYS);
  for (const [key, value] of Object.entries(raw)) {
    if (sections.includes(key)) continue;
    const guess = isTable(value) ? closest(key, sections) : undefined;
    review.warning(
      keyName(key),
      isTable(value)
        ? `unknown section, ignored${guess === undefined ? "" : ` (did you mean [${guess}]?)`}`
        : "unknown key, ignored",
    );
  }

  const teleport = validateTeleport(raw, deps, review);
  const mailer = validateMailer(raw, deps, review);
  const delivery = review.section(raw, "delivery");
  const deliveryTable = isTable(delivery) ? delivery : undefined;
  const sender = delivery === INVALID ? undefined : validateSender(deliveryTable, review);
  const roleToRecipients = validateRecipients(raw, deliveryTable, review);
  const log = validateLog(raw, review);
  const status = validateStatus(raw, review);
  const reminders = validateReminders(raw, review);
  const escalation = validateEscalation(raw, review);
  const accessExpiry = validateAccessExpiry(raw, review);
  const notifyRequester = delivery === INVALID
    ? INVALID
    : validateNotifyRequester(deliveryTable, review);
  const limits = delivery === INVALID ? INVALID : validateDeliveryLimits(deliveryTable, review);
  const templates = validateTemplates(raw, deps.readTextFile);
  review.problems.push(...templates.problems);
  review.warnings.push(...templates.warnings);

  if (
    review.problems.length > 0 || teleport === undefined || mailer === undefined ||
    sender === undefined || roleToRecipients === undefined || log === undefined ||
    status === undefined || reminders === INVALID || notifyRequester === INVALID ||
    limits === INVALID || escalation === INVALID || accessExpiry === INVALID
  ) {
    // Every undefined above comes with a recorded problem; the fallback only guards that promise.
    // The warnings go along: an unknown key is often the cause of a problem ("smtp.hots" for
    // a missing smtp.host).
    throw new ConfigError(
      review.problems.length > 0 ? review.problems : ["Invalid configuration (no detail recorded)"],
      { warnings: review.warnings },
    );
  }
  const config: Config = {
    teleport,
    mailer,
    delivery: { sender, notifyRequester, ...limits },
    roleToRecipients,
    log,
    status,
    ...(reminders ? { reminders } : {}),
    ...(escalation ? { escalation } : {}),
    ...(accessExpiry ? { accessExpiry } : {}),
    ...(templates.sources ? { templates: templates.sources } : {}),
  };
  return { config, warnings: review.warnings };
}

// ---------------------------------------------------------------------------
// [escalation] and [access_expiry]

/** The keys of one escalation level (`[escalation]` itself or one `[[escalation.levels]]`). */
const ESCALATION_LEVEL_KEYS = ["after", "recipients", "role_to_recipients"] as const;

/** A positive Go duration given as `value`, named `dotted` in messages. */
function durationValue(value: unknown, dotted: string, review: Review): number | Invalid {
  if (typeof value !== "string") {
    review.problem(dotted, `must be a duration string such as "1h", got ${describe(value)}`);
    return INVALID;
  }
  try {
    const ms = parseDuration(value);
    if (ms > 0) return ms;
    review.problem(dotted, `must be longer than zero, got ${quote(value)}`);
  } catch (error) {
    review.problem(dotted, lowerFirst((error as Error).message));
  }
  return INVALID;
}

/** An address or an array of addresses at `dotted`. */
function addressList(value: unknown, dotted: string, review: Review): string[] | Invalid {
  const before = review.problems.length;
  let list: string[] = [];
  if (typeof value === "string") {
    const address = recipientAddress(value, dotted, review);
    if (address !== undefined) list = [address];
  } else if (Array.isArray(value)) {
    list = recipientList(value, dotted, review);
  } else {
    review.problem(
      dotted,
      `must be an email address or an array of email addresses, got ${describe(value)}`,
    );
  }
  return review.problems.length === before ? list : INVALID;
}

/** One escalation level at `prefix` (`escalation` or `escalation.levels[i]`). */
function escalationLevel(
  table: Table,
  prefix: string,
  review: Review,
): EscalationLevelConfig | Invalid {
  let ok = true;
  let after: number | Invalid = INVALID;
  if (Object.hasOwn(table, "after")) {
    after = durationValue(table["after"], `${prefix}.after`, review);
  } else {
    review.problem(`${prefix}.after`, 'is required (e.g. "4h")');
  }
  let recipients: string[] = [];
  if (Object.hasOwn(table, "recipients")) {
    const list = addressList(table["recipients"], `${prefix}.recipients`, review);
    if (list === INVALID) ok = false;
    else recipients = list;
  }
  if (ok && recipients.length === 0) {
    review.problem(
      `${prefix}.recipients`,
      "must list at least one email address (for roles without a list of their own)",
    );
    ok = false;
  }
  const entries: Array<[string, readonly string[]]> = [];
  if (Object.hasOwn(table, "role_to_recipients")) {
    const mapping = table["role_to_recipients"];
    const dotted = `${prefix}.role_to_recipients`;
    if (!isTable(mapping)) {
      review.problem(dotted, `must be a table of role = addresses, got ${describe(mapping)}`);
      ok = false;
    } else {
      for (const [role, value] of Object.entries(mapping)) {
        const list = addressList(value, `${dotted}.${JSON.stringify(role)}`, review);
        if (list === INVALID) ok = false;
        else entries.push([role, list]);
      }
    }
  }
  if (!ok || after === INVALID) return INVALID;
  // A null prototype keeps role names such as "constructor" from meeting Object.prototype.
  const roleToRecipients = Object.setPrototypeOf(Object.fromEntries(entries), null);
  return { afterMs: after, recipients, roleToRecipients };
}

/**
 * `[escalation]`: off when absent; `after` and `recipients` required, an
 * optional `role_to_recipients` table, and optional `[[escalation.levels]]`
 * of the same keys, each later than the one before.
 */
function validateEscalation(raw: Table, review: Review): EscalationConfig | undefined | Invalid {
  const table = review.section(raw, "escalation");
  if (table === INVALID) return INVALID;
  if (table === undefined) return undefined;
  const levels: Array<EscalationLevelConfig | Invalid> = [
    escalationLevel(table, "escalation", review),
  ];
  if (Object.hasOwn(table, "levels")) {
    const value = table["levels"];
    if (!Array.isArray(value) || !value.every(isTable)) {
      review.problem(
        "escalation.levels",
        `must be an array of tables ([[escalation.levels]]), got ${describe(value)}`,
      );
      levels.push(INVALID);
    } else {
      value.forEach((level, index) => {
        const prefix = `escalation.levels[${index}]`;
        for (const key of Object.keys(level)) {
          if ((ESCALATION_LEVEL_KEYS as readonly string[]).includes(key)) continue;
          const guess = closest(key, ESCALATION_LEVEL_KEYS);
          const hint = guess === undefined ? "" : ` (did you mean ${prefix}.${guess}?)`;
          review.warning(`${prefix}.${keyName(key)}`, `unknown key, ignored${hint}`);
        }
        levels.push(escalationLevel(level, prefix, review));
      });
    }
  }
  const valid = levels.filter((l): l is EscalationLevelConfig => l !== INVALID);
  if (valid.length !== levels.length) return INVALID;
  for (let i = 1; i < valid.length; i++) {
    if (valid[i]!.afterMs <= valid[i - 1]!.afterMs) {
      const before = i === 1 ? "escalation.after" : `escalation.levels[${i - 2}].after`;
      review.problem(`escalation.levels[${i - 1}].after`, `must be later than ${before}`);
      return INVALID;
    }
  }
  return { levels: valid };
}

/** `[access_expiry]`: off when absent; `warn_before` a non-empty array of durations. */
function validateAccessExpiry(
  raw: Table,
  review: Review,
): AccessExpiryConfig | undefined | Invalid {
  const table = review.section(raw, "access_expiry");
  if (table === INVALID) return INVALID;
  if (table === undefined) return undefined;
  const key = "access_expiry.warn_before";
  if (!Object.hasOwn(table, "warn_before")) {
    review.problem(key, 'is required in [access_expiry] (e.g. ["24h", "1h"])');
    return INVALID;
  }
  const value = table["warn_before"];
  if (!Array.isArray(value) || value.length === 0) {
    review.problem(
      key,
      `must be a non-empty array of duration strings such as ["24h", "1h"], got ${describe(value)}`,
    );
    return INVALID;
  }
  const parsed = value.map((v, i) => durationValue(v, `${key}[${i}]`, review));
  const valid = parsed.filter((ms): ms is number => ms !== INVALID);
  if (valid.length !== parsed.length) return INVALID;
  const unique = [...new Set(valid)].sort((a, b) => b - a);
  if (unique.length < valid.length) review.warning(key, "lists a duration twice; sent once");
  return { warnBeforeMs: unique };
}
