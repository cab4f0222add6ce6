/**
 * The mailer seam: what the app hands a mailer (`OutgoingEmail`), what it gets
 * back, the `Mailer` interface both SMTP and Mailgun implement, the one error
 * type they throw, and the header hygiene they share (threading headers with
 * exactly one pair of angle brackets, no CR/LF reaching a header).
 */
import { isPlainAddress } from "../lib/address.ts";

/** One email to one recipient. */
export interface OutgoingEmail {
  /** A plain `local@domain` address. */
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  /** Sent as the `text/html` alternative of `text` when present. */
  readonly html?: string;
  /**
   * The Message-ID of the email this one replies to, with or without angle
   * brackets; it becomes both `In-Reply-To` and `References`.
   */
  readonly inReplyTo?: string;
  /** Extra headers; names must be plain header names and not one the mailer sets. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** What the mail server or API accepted. */
export interface SentEmail {
  /** The email's Message-ID, without angle brackets. */
  readonly messageId: string;
}

/** Sends email. Implementations: `createSmtpMailer`, `createMailgunMailer`. */
export interface Mailer {
  /** Sends one email; rejects with `MailError`, or with `signal.reason` once aborted. */
  send(email: OutgoingEmail, signal?: AbortSignal): Promise<SentEmail>;
  /**
   * Told of a content (text and HTML) about to be sent, so that whatever
   * the mailer makes of it once for all its recipients can be made now
   * (SMTP composes the MIME body). Best effort: never throws, sends nothing.
   * Returns what to call when the content will not be sent after all.
   */
  prepare?(content: { readonly text: string; readonly html?: string }): () => void;
  /**
   * Told of recipients whose emails may follow soon (a new request's, while
   * its claim is written), so that a mailer with nothing else to do can get
   * their delivery started: SMTP opens a transaction to each (`MAIL FROM`,
   * `RCPT TO`) that waits before `DATA` for the next `send` to that
   * recipient. Best effort: never throws, delivers nothing. Returns what to
   * call when the emails will not be sent after all (SMTP resets them).
   */
  openEnvelopes?(recipients: readonly string[]): () => void;
  /** Proves the server or API is reachable and accepts our credentials; rejects with `MailError`. */
  checkHealth(signal?: AbortSignal): Promise<void>;
  /** Releases connections; sends in flight may fail. */
  close(): Promise<void>;
}

export interface MailErrorOptions {
  /** True when trying the same email again later may succeed. */
  readonly transient: boolean;
  /** Machine-readable reason: a Nodemailer or system code (`EAUTH`, `ECONNREFUSED`), or `HTTP_<status>`. */
  readonly code?: string;
  /** SMTP reply code or HTTP status. */
  readonly status?: number;
  /** The server's answer, as received. */
  readonly response?: string;
  /** The recipient the failure is about, when it is about one. */
  readonly recipient?: string;
  /** The server or API the failure came from (`smtp.example.com:587`, `api.mailgun.net`). */
  readonly server?: string;
  /** How long the server asked us to wait before trying again (HTTP `Retry-After`). */
  readonly retryAfterMs?: number;
  readonly cause?: unknown;
}

/** A failed send or health check, classed as transient (retry) or permanent (give up). */
export class MailError extends Error {
  override readonly name = "MailError";
  readonly transient: boolean;
  // `declare`: an absent field stays absent instead of being defined as undefined.
  declare readonly code?: string;
  declare readonly status?: number;
  declare readonly response?: string;
  declare readonly recipient?: string;
  declare readonly server?: string;
  declare readonly retryAfterMs?: number;

  constructor(message: string, options: MailErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.transient = options.transient;
    if (options.code !== undefined) this.code = options.code;
    if (options.status !== undefined) this.status = options.status;
    if (options.response !== undefined) this.response = options.response;
    if (options.recipient !== undefined) this.recipient = options.recipient;
    if (options.server !== undefined) this.server = options.server;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** Headers the mailers set themselves; `OutgoingEmail.headers` may not name them. */
const RESERVED_HEADERS = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "sender",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "in-reply-to",
  "references",
  "auto-submitted",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
]);

/** RFC 5322 field name: printable ASCII except the colon. */
const HEADER_NAME = /^[!-9;-~]+$/;

/** RFC 3834: marks every email as machine-generated so auto-responders stay quiet. */
export const AUTO_SUBMITTED = "auto-generated";

/**
 * A header value that cannot start a new header: every CR/LF run becomes one
 * space and the other control characters (except TAB) are dropped.
 */
export function sanitizeHeaderValue(value: string): string {
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  return value.replace(/[\r\n]+/g, " ").replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, "");
}

/**
 * A Message-ID without angle brackets (`<a@b>`, `<<a@b>>` and `a@b` all give
 * `a@b`); whitespace and control characters are dropped since a msg-id has none.
 */
export function bareMessageId(id: string): string {
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  return id.replace(/[\s<>\u0000-\u001f\u007f]/g, "");
}

/** The email after validation, with every header value safe to write. */
export interface PreparedEmail {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html?: string;
  /** Bare Message-ID replied to (no brackets), if any. */
  readonly inReplyTo?: string;
  /** Headers in order, values sanitised: `Auto-Submitted`, then the caller's. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/**
 * Validates and sanitises an email before a mailer sends it. Throws a
 * permanent `MailError` (code `EMESSAGE`) for what no retry can fix: a
 * recipient that is not a plain address, an empty reply id, a bad header name.
 */
export function prepareEmail(email: OutgoingEmail): PreparedEmail {
  const invalid = (message: string) =>
    new MailError(message, { transient: false, code: "EMESSAGE", recipient: email.to });
  if (!isPlainAddress(email.to)) {
    throw invalid(`Invalid recipient ${JSON.stringify(email.to)}: not a plain address`);
  }
  const headers: Array<readonly [string, string]> = [["Auto-Submitted", AUTO_SUBMITTED]];
  for (const [name, value] of Object.entries(email.headers ?? {})) {
    if (!HEADER_NAME.test(name)) {
      throw invalid(`Invalid header name ${JSON.stringify(name)}`);
    }
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      throw invalid(`Header ${JSON.stringify(name)} is set by the mailer`);
    }
    headers.push([name, sanitizeHeaderValue(value)]);
  }
  let inReplyTo: string | undefined;
  if (email.inReplyTo !== undefined) {
    inReplyTo = bareMessageId(email.inReplyTo);
    if (inReplyTo === "") {
      throw invalid(`Invalid In-Reply-To ${JSON.stringify(email.inReplyTo)}: empty Message-ID`);
    }
  }
  return {
    to: email.to,
    subject: sanitizeHeaderValue(email.subject),
    text: email.text,
    headers,
    ...(email.html === undefined ? {} : { html: email.html }),
    ...(inReplyTo === undefined ? {} : { inReplyTo }),
  };
}

/** Node's codes for a peer certificate that did not verify: a setup problem, not worth retrying. */
const CERTIFICATE_ERROR = /CERT|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|SELF_SIGNED/;

/** True for Node's TLS certificate verification codes (`CERT_HAS_EXPIRED`, ...). */
export function isCertificateErrorCode(code: string | undefined): boolean {
  return code !== undefined && CERTIFICATE_ERROR.test(code);
}

/** What replaces a secret in a message. */
const REDACTED = "[redacted]";
/** Shortest run of base64 characters looked at as a possible (partial) encoded secret. */
const MIN_BASE64_TOKEN = 8;
/** A run of base64 characters with optional padding. */
const BASE64_TOKEN = /[A-Za-z0-9+/]{8,}={0,2}/g;

/**
 * A secret and every encoding of it that we put on the wire, so that a server
 * echoing what it received (an SMTP 535 quoting the AUTH PLAIN blob, an HTTP
 * 401 quoting the Authorization header) cannot leak it through our errors.
 */
export interface Redaction {
  /** The secret as the operator wrote it. */
  readonly secret: string;
  /** Its encoded forms as sent (base64 texts), with padding. */
  readonly encoded: readonly string[];
}

/** Base64 of the UTF-8 bytes of `text`, as SMTP AUTH and HTTP Basic encode credentials. */
export function base64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * The forms of an SMTP password: AUTH PLAIN sends base64 of
 * `\0<user>\0<password>`, AUTH LOGIN base64 of the password on its own.
 */
export function smtpRedaction(
  user: string | undefined,
  password: string | undefined,
): Redaction | undefined {
  if (password === undefined || password === "") return undefined;
  return { secret: password, encoded: [base64(`\0${user ?? ""}\0${password}`), base64(password)] };
}

/** The forms of an HTTP Basic credential (`Authorization: Basic base64(<user>:<secret>)`). */
export function basicAuthRedaction(user: string, secret: string): Redaction {
  return { secret, encoded: [base64(`${user}:${secret}`), base64(secret)] };
}

/** The text a base64 token decodes to (latin1, so any bytes do), or undefined when it is none. */
function decodeBase64(token: string): string | undefined {
  const bare = token.replace(/=+$/, "");
  if (bare.length % 4 === 1) return undefined;
  try {
    return atob(bare + "=".repeat((4 - (bare.length % 4)) % 4));
  } catch {
    return undefined;
  }
}

/** `secret`'s UTF-8 bytes as a latin1 string, to look for it in decoded bytes. */
function latin1Bytes(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) out += String.fromCharCode(byte);
  return out;
}

/**
 * Replaces every occurrence of the secret in `text` (no-op for an empty
 * secret), and with a `Redaction` also its encoded forms, with or without
 * padding, any base64 run that is a piece of one of them (a truncated echo),
 * and any base64 run that decodes to something containing the secret.
 */
export function redact(text: string, secret: string | Redaction | undefined): string {
  const redaction = typeof secret === "string" ? { secret, encoded: [] } : secret;
  if (redaction === undefined || redaction.secret === "") return text;
  const bare = redaction.encoded.map((form) => form.replace(/=+$/, ""));
  let out = text;
  for (const form of [...redaction.encoded, ...bare, redaction.secret]) {
    if (form !== "") out = out.split(form).join(REDACTED);
  }
  if (redaction.encoded.length === 0) return out;
  const secretBytes = latin1Bytes(redaction.secret);
  return out.replace(BASE64_TOKEN, (token) => {
    const core = token.replace(/=+$/, "");
    if (core.length < MIN_BASE64_TOKEN || core === "redacted") return token;
    if (bare.some((form) => form.includes(core))) return REDACTED;
    const decoded = decodeBase64(token);
    return decoded !== undefined && decoded.includes(secretBytes) ? REDACTED : token;
  });
}

/**
 * Redacts, in place, the text fields of an error we are about to keep as a
 * `cause` (message, response, details, stack), so that inspecting the
 * `MailError` does not print what the message hides. Returns `err`.
 */
export function scrubError<T>(err: T, secret: string | Redaction | undefined, depth = 0): T {
  // The depth bounds a cause chain that loops.
  if (secret === undefined || typeof err !== "object" || err === null || depth > 5) return err;
  const fields = err as Record<string, unknown>;
  for (const key of ["message", "response", "details", "stack"]) {
    const value = fields[key];
    if (typeof value !== "string") continue;
    try {
      fields[key] = redact(value, secret);
    } catch {
      // A read-only field: nothing to do about it.
    }
  }
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined) scrubError(cause, secret, depth + 1);
  return err;
}

/** Rejects with the signal's reason as soon as it aborts; otherwise settles like `promise`. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
