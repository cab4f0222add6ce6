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

  constructor(message: string, options: MailErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.transient = options.transient;
    if (options.code !== undefined) this.code = options.code;
    if (options.status !== undefined) this.status = options.status;
    if (options.response !== undefined) this.response = options.response;
    if (options.recipient !== undefined) this.recipient = options.recipient;
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

/** Replaces every occurrence of `secret` in `text` (no-op for an empty secret). */
export function redact(text: string, secret: string | undefined): string {
  if (secret === undefined || secret === "") return text;
  return text.split(secret).join("[redacted]");
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
