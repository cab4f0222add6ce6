/**
 * The SMTP mailer (Nodemailer, pooled): how `[smtp]` maps onto transport
 * options (implicit TLS on 465, the STARTTLS policy, trusted CAs, AUTH only
 * with a username, timeouts) and how Nodemailer's errors become `MailError`s
 * classed transient or permanent.
 *
 * TCP_NODELAY: Nodemailer (since 10.1) turns Nagle off on every SMTP socket it
 * opens (`SMTPConnection#_onConnect`), which is what SPEC §7 asks for, so we
 * add no socket hook of our own; `scripts/bench_smtp_nodelay.ts` measures it.
 */
import nodemailer, { type SMTPPoolOptions } from "nodemailer";
import tls from "node:tls";
import type { SmtpConfig, StarttlsPolicy } from "../config/types.ts";
import {
  abortable,
  isCertificateErrorCode,
  type Mailer,
  MailError,
  type OutgoingEmail,
  prepareEmail,
  redact,
  type SentEmail,
} from "./mailer.ts";
import { messageIdGenerator } from "./message_id.ts";

/** RFC 8314 submission port: TLS from the first byte instead of STARTTLS. */
export const IMPLICIT_TLS_PORT = 465;
/** At most this many SMTP connections at once; a notification burst queues behind them. */
export const MAX_CONNECTIONS = 5;
/** Messages sent over one connection before it is replaced (Nodemailer's default). */
const MAX_MESSAGES_PER_CONNECTION = 100;
/** Time to open the TCP (and implicit TLS) connection, DNS included. */
const CONNECTION_TIMEOUT_MS = 10_000;
/** Time from connecting to the server's greeting (and to the end of STARTTLS). */
const GREETING_TIMEOUT_MS = 10_000;
/** Longest silence of the server in the middle of a session. */
const SOCKET_TIMEOUT_MS = 10_000;
/** An idle pooled connection is closed (QUIT) before the socket timeout would cut it. */
const IDLE_TIMEOUT_MS = 5_000;

/** Nodemailer's codes for a connection that broke, timed out or never came up. */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNECTION",
  "ESOCKET",
  "ETIMEDOUT",
  "EDNS",
  "EPROXY",
  "ETLS",
]);

export interface SmtpTimeouts {
  readonly connectionMs: number;
  readonly greetingMs: number;
  readonly socketMs: number;
}

export const DEFAULT_SMTP_TIMEOUTS: SmtpTimeouts = {
  connectionMs: CONNECTION_TIMEOUT_MS,
  greetingMs: GREETING_TIMEOUT_MS,
  socketMs: SOCKET_TIMEOUT_MS,
};

export interface SmtpMailerDeps {
  /** Message-ID factory (without brackets); default: random ids in the sender's domain. */
  readonly messageId?: () => string;
  /** CA certificates (PEM) trusted besides `cfg.ca`; default `systemTrustedCas()`. */
  readonly trustedCas?: () => readonly string[];
  /** Shorter timeouts for tests. */
  readonly timeouts?: SmtpTimeouts;
}

/** Node (22.15+) and Deno expose the CA stores one by one; older runtimes only the bundle. */
interface TlsWithCaStores {
  getCACertificates?: (type: "default" | "system" | "bundled" | "extra") => string[];
}

/**
 * The operating system's trusted roots plus the runtime's bundled Mozilla set.
 * Needed because a `ca` option replaces the runtime's default store (in Node
 * and in Deno alike) instead of adding to it.
 */
export function systemTrustedCas(): string[] {
  const stores = tls as unknown as TlsWithCaStores;
  if (typeof stores.getCACertificates !== "function") return [...tls.rootCertificates];
  let system: string[] = [];
  try {
    system = stores.getCACertificates("system");
  } catch {
    // No readable system store (a minimal container): the bundled roots still apply.
  }
  return [...system, ...stores.getCACertificates("bundled")];
}

/** The STARTTLS switches of Nodemailer for a policy (none apply with implicit TLS). */
function starttlsOptions(policy: StarttlsPolicy): {
  requireTLS?: boolean;
  opportunisticTLS?: boolean;
  ignoreTLS?: boolean;
} {
  switch (policy) {
    case "mandatory":
      // STARTTLS even when not advertised; a refusal or failed handshake is an error.
      return { requireTLS: true };
    case "opportunistic":
      // STARTTLS when advertised; a refused STARTTLS goes on in plaintext without AUTH.
      return { opportunisticTLS: true };
    case "disabled":
      return { ignoreTLS: true };
  }
}

/** The Nodemailer pool options for `cfg` (pure; the password is read here only). */
export function smtpTransportOptions(
  cfg: SmtpConfig,
  trustedCas: readonly string[],
  timeouts: SmtpTimeouts = DEFAULT_SMTP_TIMEOUTS,
): SMTPPoolOptions & { pool: true } {
  const secure = cfg.port === IMPLICIT_TLS_PORT;
  const ca = cfg.ca === undefined ? [...trustedCas] : [...trustedCas, cfg.ca];
  return {
    host: cfg.host,
    port: cfg.port,
    secure,
    ...(secure ? {} : starttlsOptions(cfg.starttlsPolicy)),
    ...(cfg.username === undefined
      ? {}
      : { auth: { user: cfg.username, pass: cfg.password?.reveal() ?? "" } }),
    // Nodemailer verifies against the host name (SNI included) unless the host is an IP.
    tls: { ca: [...new Set(ca)], rejectUnauthorized: true },
    pool: true,
    maxConnections: MAX_CONNECTIONS,
    maxMessages: MAX_MESSAGES_PER_CONNECTION,
    idleTimeout: IDLE_TIMEOUT_MS,
    connectionTimeout: timeouts.connectionMs,
    greetingTimeout: timeouts.greetingMs,
    socketTimeout: timeouts.socketMs,
    logger: false,
    debug: false,
  };
}

/** The fields Nodemailer puts on its errors. */
interface NodemailerError {
  message?: unknown;
  code?: unknown;
  originalCode?: unknown;
  response?: unknown;
  responseCode?: unknown;
  recipient?: unknown;
  rejectedErrors?: unknown;
  /** An `AggregateError`'s parts: one failed connect per address of the host. */
  errors?: unknown;
}

function stringField(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** Transient: 4xx replies (and 503, a session state problem), broken connections, timeouts. */
function isTransient(status: number | undefined, code: string | undefined, original?: string) {
  if (status !== undefined) return status < 500 || status === 503;
  if (isCertificateErrorCode(original)) return false;
  return code !== undefined && CONNECTION_ERROR_CODES.has(code);
}

/**
 * What went wrong, never empty: a host with an IPv6 and an IPv4 address
 * (`localhost`) fails to connect with an `AggregateError` that has no
 * message of its own, only one error per address tried.
 */
function detailOf(e: NodemailerError, err: unknown, code: string | undefined): string {
  const text = String(e.message ?? err);
  if (text !== "") return text;
  const parts = Array.isArray(e.errors)
    ? e.errors.map((part) => String((part as NodemailerError)?.message ?? part)).filter(Boolean)
    : [];
  return parts.length > 0 ? parts.join("; ") : code ?? "unknown error";
}

/**
 * Turns a Nodemailer error into a `MailError`: code, reply code and reply text
 * kept, the failed recipient named, the password never in the text.
 */
export function smtpMailError(
  err: unknown,
  context: {
    what: string;
    server: string;
    recipient?: string | undefined;
    password?: string | undefined;
  },
): MailError {
  const e: NodemailerError = typeof err === "object" && err !== null ? err : { message: err };
  const code = stringField(e.code);
  const original = stringField(e.originalCode);
  const status = typeof e.responseCode === "number" ? e.responseCode : undefined;
  const response = stringField(e.response);
  const rejected = Array.isArray(e.rejectedErrors)
    ? (e.rejectedErrors[0] as NodemailerError | undefined)
    : undefined;
  const recipient = stringField(e.recipient) ?? stringField(rejected?.recipient) ??
    context.recipient;
  const detail = detailOf(e, err, code);
  const reason = isCertificateErrorCode(original)
    ? `certificate verification failed (${original}): ${detail}`
    : detail;
  const about = recipient === undefined ? "" : ` to ${JSON.stringify(recipient)}`;
  const message = redact(
    `SMTP ${context.what}${about} via ${JSON.stringify(context.server)} failed: ${reason}`,
    context.password,
  );
  const finalCode = original ?? code;
  return new MailError(message, {
    transient: isTransient(status, code, original),
    ...(finalCode === undefined ? {} : { code: finalCode }),
    ...(status === undefined ? {} : { status }),
    ...(response === undefined ? {} : { response: redact(response, context.password) }),
    ...(recipient === undefined ? {} : { recipient }),
    cause: err,
  });
}

/**
 * An SMTP mailer for `cfg`, sending as `sender` (a mailbox, possibly with a
 * display name). Connections open on first use and are pooled.
 */
export function createSmtpMailer(
  cfg: SmtpConfig,
  sender: string,
  deps: SmtpMailerDeps = {},
): Mailer {
  const nextMessageId = deps.messageId ?? messageIdGenerator(sender);
  const options = smtpTransportOptions(
    cfg,
    (deps.trustedCas ?? systemTrustedCas)(),
    deps.timeouts ?? DEFAULT_SMTP_TIMEOUTS,
  );
  const transporter = nodemailer.createTransport(options);
  const server = `${cfg.host}:${cfg.port}`;
  const password = cfg.password?.reveal();

  return {
    async send(email: OutgoingEmail, signal?: AbortSignal): Promise<SentEmail> {
      signal?.throwIfAborted();
      const prepared = prepareEmail(email);
      const messageId = nextMessageId();
      const threadId = prepared.inReplyTo === undefined ? undefined : `<${prepared.inReplyTo}>`;
      try {
        await transporter.sendMail({
          from: sender,
          to: prepared.to,
          subject: prepared.subject,
          text: prepared.text,
          ...(prepared.html === undefined ? {} : { html: prepared.html }),
          messageId: `<${messageId}>`,
          ...(threadId === undefined ? {} : { inReplyTo: threadId, references: threadId }),
          headers: Object.fromEntries(prepared.headers),
          ...(signal === undefined ? {} : { signal }),
        });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw smtpMailError(err, { what: "send", server, recipient: prepared.to, password });
      }
      return { messageId };
    },

    async checkHealth(signal?: AbortSignal): Promise<void> {
      signal?.throwIfAborted();
      try {
        await abortable(transporter.verify(), signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw smtpMailError(err, { what: "health check", server, password });
      }
    },

    close(): Promise<void> {
      transporter.close();
      return Promise.resolve();
    },
  };
}
