/**
 * The Mailgun mailer (mailgun.js): one `POST <api_base>/v3/<domain>/messages`
 * per email, basic auth `api:<key>`, threading and `Auto-Submitted` as `h:`
 * fields, TLS required for delivery; Mailgun's id (which it returns in angle
 * brackets) becomes the thread's Message-ID without them. Errors become
 * `MailError`s: HTTP 429, 5xx and network failures transient, other 4xx
 * permanent.
 */
import Mailgun from "mailgun.js";
import type { MailgunConfig } from "../config/types.ts";
import { parseMailbox } from "../lib/address.ts";
import {
  abortable,
  bareMessageId,
  isCertificateErrorCode,
  type Mailer,
  MailError,
  type OutgoingEmail,
  prepareEmail,
  redact,
  type SentEmail,
} from "./mailer.ts";

/** Whole-request timeout of one API call (connect, upload, answer). */
const REQUEST_TIMEOUT_MS = 10_000;
/** HTTP 429: Mailgun's rate limit, worth retrying later. */
const HTTP_TOO_MANY_REQUESTS = 429;
/** Subject of the test-mode message the health check sends (Mailgun does not deliver it). */
const HEALTH_CHECK_SUBJECT = "teleport-email health check";

/**
 * mailgun.js reports a request that got no HTTP answer (refused, reset,
 * timed out, TLS failure) as status 400 with the axios or system error code
 * as the message, e.g. `ECONNREFUSED`, `ECONNABORTED`, `ERR_NETWORK`. A real
 * answer carries a reason phrase ("Bad Request") or the API's own message.
 */
const NO_ANSWER_CODE = /^(E[A-Z0-9_]+|ERR_[A-Z0-9_]+|[A-Z_]*CERT[A-Z_]*|UNABLE_TO_[A-Z_]+)$/;

export interface MailgunMailerDeps {
  /** Request timeout; default 10 s. */
  readonly timeoutMs?: number;
}

/** The fields of mailgun.js's `MailgunAPIError`. */
interface MailgunApiError {
  type?: unknown;
  status?: unknown;
  message?: unknown;
  details?: unknown;
}

/** Turns a mailgun.js error into a `MailError`; the API key never appears in it. */
export function mailgunMailError(
  err: unknown,
  context: { what: string; apiBase: string; recipient?: string | undefined; key: string },
): MailError {
  const e: MailgunApiError = typeof err === "object" && err !== null ? err : {};
  const about = context.recipient === undefined ? "" : ` to ${JSON.stringify(context.recipient)}`;
  const prefix = `Mailgun ${context.what}${about} via ${JSON.stringify(context.apiBase)} failed`;
  const recipient = context.recipient === undefined ? {} : { recipient: context.recipient };
  const text = (value: unknown) =>
    redact(typeof value === "string" ? value : JSON.stringify(value) ?? "", context.key);

  if (e.type !== "MailgunAPIError" || typeof e.status !== "number") {
    const detail = err instanceof Error ? err.message : String(err);
    return new MailError(redact(`${prefix}: ${detail}`, context.key), {
      transient: false,
      ...recipient,
      cause: err,
    });
  }
  const status = e.status;
  const message = typeof e.message === "string" ? e.message : "";
  const details = text(e.details);
  if (status === 400 && NO_ANSWER_CODE.test(message)) {
    const certificate = isCertificateErrorCode(message);
    const reason = certificate ? "certificate verification failed" : "no answer";
    return new MailError(`${prefix}: ${reason} (${message}): ${details}`, {
      transient: !certificate,
      code: message,
      ...recipient,
      cause: err,
    });
  }
  return new MailError(`${prefix}: HTTP ${status} ${text(message)}: ${details}`, {
    transient: status === HTTP_TOO_MANY_REQUESTS || status >= 500,
    code: `HTTP_${status}`,
    status,
    response: details,
    ...recipient,
    cause: err,
  });
}

/** A Mailgun mailer for `cfg`, sending as `sender` (a mailbox, possibly with a display name). */
export function createMailgunMailer(
  cfg: MailgunConfig,
  sender: string,
  deps: MailgunMailerDeps = {},
): Mailer {
  const key = cfg.privateKey.reveal();
  const client = new Mailgun(FormData).client({
    username: "api",
    key,
    url: cfg.apiBase,
    timeout: deps.timeoutMs ?? REQUEST_TIMEOUT_MS,
  });
  const senderAddress = parseMailbox(sender).address;

  return {
    async send(email: OutgoingEmail, signal?: AbortSignal): Promise<SentEmail> {
      signal?.throwIfAborted();
      const prepared = prepareEmail(email);
      const threadId = prepared.inReplyTo === undefined ? undefined : `<${prepared.inReplyTo}>`;
      const fields: Record<string, string> = {};
      for (const [name, value] of prepared.headers) fields[`h:${name}`] = value;
      if (threadId !== undefined) {
        fields["h:In-Reply-To"] = threadId;
        fields["h:References"] = threadId;
      }
      let result;
      try {
        result = await abortable(
          client.messages.create(cfg.domain, {
            from: sender,
            to: prepared.to,
            subject: prepared.subject,
            text: prepared.text,
            ...(prepared.html === undefined ? {} : { html: prepared.html }),
            ...fields,
            // Sent as "yes": Mailgun delivers only over TLS (or bounces).
            "o:require-tls": true,
          }),
          signal,
        );
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw mailgunMailError(err, {
          what: "send",
          apiBase: cfg.apiBase,
          recipient: prepared.to,
          key,
        });
      }
      const messageId = bareMessageId(result.id ?? "");
      if (messageId === "") {
        throw new MailError(
          `Mailgun send to ${JSON.stringify(prepared.to)} via ${
            JSON.stringify(cfg.apiBase)
          } returned no message id: ${JSON.stringify(result.message ?? "")}`,
          { transient: false, code: "EPROTOCOL", recipient: prepared.to },
        );
      }
      return { messageId };
    },

    async checkHealth(signal?: AbortSignal): Promise<void> {
      signal?.throwIfAborted();
      try {
        await abortable(
          client.messages.create(cfg.domain, {
            from: sender,
            to: senderAddress,
            subject: HEALTH_CHECK_SUBJECT,
            text: "Test-mode message: Mailgun accepts it and does not deliver it.",
            "o:testmode": true,
          }),
          signal,
        );
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw mailgunMailError(err, { what: "health check", apiBase: cfg.apiBase, key });
      }
    },

    close(): Promise<void> {
      return Promise.resolve();
    },
  };
}
