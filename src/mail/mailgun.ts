/**
 * The Mailgun mailer: one `POST <api_base>/v3/<domain>/messages` per email,
 * basic auth `api:<key>`, threading and `Auto-Submitted` as `h:` fields, TLS
 * required for delivery; Mailgun's id (which it returns in angle brackets)
 * becomes the thread's Message-ID without them. Errors become `MailError`s:
 * permanent only when the API refused this message (HTTP 400, 413, 422, and
 * a sandbox domain's 403 for a recipient it is not authorised to mail);
 * everything else is the mailer being down until fixed or over (401/403 of
 * a rotated key or a disabled domain, 404, 429 with the `Retry-After` the
 * API asked for, 5xx, network and certificate failures): transient, so that
 * no recipient is given up on for it.
 *
 * The request is made with `fetch`, not mailgun.js: mailgun.js drops the
 * response headers of a failed request (its `MailgunAPIError` keeps status
 * and body only), so `Retry-After` could not be honoured; it also reports a
 * request that got no answer as an HTTP 400 whose message is the system
 * error code, and its abort only stopped our waiting, not the request. The
 * one call we make needs none of its other features.
 *
 * The key never travels over plain http off the loopback interface unless
 * `mailgun.allow_insecure_http` says so (the config refuses it too; this is
 * the second line), redirects are not followed (the key would go along), and
 * every form of it a server may echo (the key, `base64(api:key)`) is
 * redacted from errors, as is any user info of `api_base`.
 */
import type { MailgunConfig } from "../config/types.ts";
import { parseMailbox } from "../lib/address.ts";
import { isLoopbackHost, withoutUserInfo } from "../lib/net_address.ts";
import {
  bareMessageId,
  base64,
  basicAuthRedaction,
  isCertificateErrorCode,
  type Mailer,
  MailError,
  type OutgoingEmail,
  prepareEmail,
  redact,
  type Redaction,
  scrubError,
  type SentEmail,
} from "./mailer.ts";
import { messageIdGenerator } from "./message_id.ts";

/** Whole-request timeout of one API call (connect, upload, answer). */
const REQUEST_TIMEOUT_MS = 10_000;
/** The answers that refuse this message itself (bad parameters, too large): no retry helps. */
const MESSAGE_REFUSALS: ReadonlySet<number> = new Set([400, 413, 422]);
/** HTTP 403: a refused account or domain, or (sandbox domains) one recipient not authorised. */
const HTTP_FORBIDDEN = 403;
/** What a sandbox domain's 403 for a recipient outside its authorised list says. */
const UNAUTHORISED_RECIPIENT = /authori[sz]ed recipient/i;
/** Subject of the test-mode message the health check sends (Mailgun does not deliver it). */
const HEALTH_CHECK_SUBJECT = "teleport-email health check";
/** The user name of Mailgun's basic auth. */
const API_USER = "api";
/** Most of an API answer we read and quote (a JSON answer is a few hundred bytes). */
const MAX_ANSWER_CHARS = 4_096;
/** Our code for a key that would have gone out unencrypted. */
const INSECURE_CODE = "EINSECURE";

export interface MailgunMailerDeps {
  /** Request timeout; default 10 s. */
  readonly timeoutMs?: number;
  /** Milliseconds since the epoch, for a `Retry-After` date; default `Date.now`. */
  readonly now?: () => number;
  /** Message-ID factory for a 200 without an id (bare); default: ids in the sender's domain. */
  readonly messageId?: () => string;
  /**
   * Who the health check's test-mode message is addressed to (Mailgun does
   * not deliver it): as in the Go plugin, `role_to_recipients["*"]`; default
   * the sender.
   */
  readonly healthCheckTo?: readonly string[];
}

/**
 * `Retry-After` (RFC 9110 §10.2.3) in milliseconds from `now`: delta-seconds
 * or an HTTP date (a date already past is 0); `undefined` when absent or not
 * one of those. Bounds are `mailRetryDelay`'s business.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1_000;
  if (!/[A-Za-z]/.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** What failed, where and for whom: the start of every error message. */
interface ErrorContext {
  readonly what: string;
  /** `api_base` as it may be shown (without user info). */
  readonly apiBase: string;
  readonly recipient?: string | undefined;
  readonly key: string | Redaction;
}

function prefixOf(context: ErrorContext): string {
  const about = context.recipient === undefined ? "" : ` to ${JSON.stringify(context.recipient)}`;
  return `Mailgun ${context.what}${about} via ${JSON.stringify(context.apiBase)} failed`;
}

/** The host of `api_base` for readiness and metrics (never user info or a path). */
function serverOf(apiBase: string): string {
  try {
    return new URL(apiBase).host;
  } catch {
    return "mailgun";
  }
}

/** An HTTP answer other than 2xx as a `MailError`; the key never appears in it. */
export function mailgunHttpError(
  answer: {
    readonly status: number;
    readonly statusText: string;
    readonly body: string;
    readonly retryAfterMs?: number | undefined;
  },
  context: ErrorContext,
): MailError {
  const { status } = answer;
  let details = answer.body.trim();
  try {
    const parsed: unknown = JSON.parse(details);
    const message = (parsed as { message?: unknown } | null)?.message;
    if (typeof message === "string") details = message;
  } catch {
    // Not JSON: the text as it came.
  }
  // Redacted whole, then cut: a key echoed across the cut would otherwise show its first part.
  details = redact(details, context.key).slice(0, MAX_ANSWER_CHARS);
  const reason = answer.statusText === "" ? "" : ` ${answer.statusText}`;
  return new MailError(`${prefixOf(context)}: HTTP ${status}${reason}: ${details}`, {
    transient: !MESSAGE_REFUSALS.has(status) &&
      !(status === HTTP_FORBIDDEN && UNAUTHORISED_RECIPIENT.test(details)),
    code: `HTTP_${status}`,
    status,
    response: details,
    server: serverOf(context.apiBase),
    ...(answer.retryAfterMs === undefined ? {} : { retryAfterMs: answer.retryAfterMs }),
    ...(context.recipient === undefined ? {} : { recipient: context.recipient }),
  });
}

/** Deno's words for the network failures worth naming, and the code they get. */
const NETWORK_CODES: ReadonlyArray<[RegExp, string]> = [
  [/certificate|UnknownIssuer|CertNotValid|NotValidForName|InvalidCertificate/i, "ERR_TLS_CERT"],
  [/connection refused/i, "ECONNREFUSED"],
  [/connection reset|broken pipe/i, "ECONNRESET"],
  [/dns error|failed to lookup address/i, "ENOTFOUND"],
];

/** A request that got no HTTP answer as a `MailError`: transient (a failed certificate too). */
export function mailgunNetworkError(
  err: unknown,
  context: ErrorContext & { readonly timedOut: boolean; readonly timeoutMs: number },
): MailError {
  // Deno's fetch says "fetch failed"; the reason is in the cause.
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    parts.push(e.message);
    e = e.cause;
  }
  const detail = redact(parts.join(": ") || String(err), context.key);
  const code = context.timedOut
    ? "ETIMEDOUT"
    : NETWORK_CODES.find(([pattern]) => pattern.test(detail))?.[1] ?? "ENETWORK";
  const certificate = isCertificateErrorCode(code);
  const reason = certificate
    ? "certificate verification failed"
    : context.timedOut
    ? `no answer within ${context.timeoutMs} ms`
    : "no answer";
  return new MailError(`${prefixOf(context)}: ${reason} (${code}): ${detail}`, {
    transient: true,
    code,
    server: serverOf(context.apiBase),
    ...(context.recipient === undefined ? {} : { recipient: context.recipient }),
    cause: scrubError(err, context.key),
  });
}

/**
 * What is read of an answer's body beyond `MAX_ANSWER_CHARS` (a hostile
 * server may send more): enough for any encoding of the key that starts
 * before the cut to be whole, so that it is redacted before the text is cut.
 */
const ANSWER_READ_CHARS = MAX_ANSWER_CHARS + 1024;

/** Reads at most `ANSWER_READ_CHARS` of an answer's body. */
async function answerText(response: Response): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (text.length < ANSWER_READ_CHARS) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text.slice(0, ANSWER_READ_CHARS);
}

/** A Mailgun mailer for `cfg`, sending as `sender` (a mailbox, possibly with a display name). */
export function createMailgunMailer(
  cfg: MailgunConfig,
  sender: string,
  deps: MailgunMailerDeps = {},
): Mailer {
  const key = cfg.privateKey.reveal();
  const redaction = basicAuthRedaction(API_USER, key);
  const authorization = `Basic ${base64(`${API_USER}:${key}`)}`;
  const timeoutMs = deps.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const now = deps.now ?? Date.now;
  const nextMessageId = deps.messageId ?? messageIdGenerator(sender);
  const senderAddress = parseMailbox(sender).address;
  const shownBase = withoutUserInfo(cfg.apiBase);
  const url = `${cfg.apiBase}/v3/${encodeURIComponent(cfg.domain)}/messages`;
  let plainHttp = false;
  let userInfo = false;
  try {
    const parsed = new URL(cfg.apiBase);
    plainHttp = parsed.protocol === "http:" && !isLoopbackHost(parsed.hostname);
    userInfo = parsed.username !== "" || parsed.password !== "";
  } catch {
    // fetch reports it.
  }

  /** Posts `fields`; resolves with the API's JSON answer or rejects with a `MailError`. */
  async function post(
    what: string,
    fields: Record<string, string>,
    recipient: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ id?: unknown; message?: unknown }> {
    const context = { what, apiBase: shownBase, recipient, key: redaction };
    if (plainHttp && cfg.allowInsecureHttp !== true) {
      throw new MailError(
        `${prefixOf(context)}: refusing to send the API key unencrypted to ` +
          `${JSON.stringify(shownBase)} (mailgun.allow_insecure_http = true would allow it)`,
        {
          transient: false,
          code: INSECURE_CODE,
          server: serverOf(cfg.apiBase),
          ...(recipient === undefined ? {} : { recipient }),
        },
      );
    }
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    const timeout = AbortSignal.timeout(timeoutMs);
    const aborted = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    let response: Response;
    try {
      // A URL with user info would make fetch throw with the URL in its message.
      if (userInfo) throw new TypeError("mailgun.api_base carries user info");
      response = await fetch(url, {
        method: "POST",
        headers: { authorization, accept: "application/json" },
        body: form,
        signal: aborted,
        redirect: "manual",
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw mailgunNetworkError(err, { ...context, timedOut: timeout.aborted, timeoutMs });
    }
    const accepted = response.status >= 200 && response.status <= 299;
    let text: string;
    try {
      text = await answerText(response);
    } catch (err) {
      // A 2xx status is Mailgun's word that it took the message: a body that breaks off or
      // stalls (or the stop signal meanwhile) does not undo that, and sending again would
      // mail the recipient twice. The answer's id is then unknown (see `send`).
      if (accepted) return {};
      if (signal?.aborted) throw signal.reason;
      throw mailgunNetworkError(err, { ...context, timedOut: timeout.aborted, timeoutMs });
    }
    if (!accepted) {
      throw mailgunHttpError({
        status: response.status,
        statusText: response.statusText,
        body: text,
        retryAfterMs: parseRetryAfter(response.headers.get("retry-after"), now()),
      }, context);
    }
    try {
      const answer: unknown = JSON.parse(text);
      return typeof answer === "object" && answer !== null ? answer : {};
    } catch {
      return {};
    }
  }

  return {
    async send(email: OutgoingEmail, signal?: AbortSignal): Promise<SentEmail> {
      signal?.throwIfAborted();
      const prepared = prepareEmail(email);
      const threadId = prepared.inReplyTo === undefined ? undefined : `<${prepared.inReplyTo}>`;
      const fields: Record<string, string> = {
        from: sender,
        to: prepared.to,
        subject: prepared.subject,
        text: prepared.text,
        ...(prepared.html === undefined ? {} : { html: prepared.html }),
      };
      for (const [name, value] of prepared.headers) fields[`h:${name}`] = value;
      if (threadId !== undefined) {
        fields["h:In-Reply-To"] = threadId;
        fields["h:References"] = threadId;
      }
      // Mailgun delivers only over TLS (or bounces).
      fields["o:require-tls"] = "yes";
      const answer = await post("send", fields, prepared.to, signal);
      const messageId = bareMessageId(typeof answer.id === "string" ? answer.id : "");
      // A 200 means Mailgun took the message: sending it again would mail the
      // recipient twice, and recording it as failed would stop every reply in the
      // thread. So it counts as sent, under a Message-ID of our own; replies then
      // reference an id the first email does not carry, which mail clients
      // survive (they thread by subject too), and that is the whole cost.
      return { messageId: messageId === "" ? nextMessageId() : messageId };
    },

    async checkHealth(signal?: AbortSignal): Promise<void> {
      signal?.throwIfAborted();
      await post(
        "health check",
        {
          from: sender,
          to: deps.healthCheckTo && deps.healthCheckTo.length > 0
            ? deps.healthCheckTo.join(",")
            : senderAddress,
          subject: HEALTH_CHECK_SUBJECT,
          text: "Test-mode message: Mailgun accepts it and does not deliver it.",
          "o:testmode": "yes",
        },
        undefined,
        signal,
      );
    },

    close(): Promise<void> {
      return Promise.resolve();
    },
  };
}
