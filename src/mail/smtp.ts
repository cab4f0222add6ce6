/**
 * The SMTP mailer (Nodemailer, pooled): how `[smtp]` maps onto transport
 * options (implicit TLS on 465, the STARTTLS policy, trusted CAs, AUTH only
 * with a username, timeouts) and how Nodemailer's errors become `MailError`s
 * classed transient or permanent.
 *
 * TCP_NODELAY: Nodemailer (since 10.1) turns Nagle off on every SMTP socket it
 * opens (`SMTPConnection#_onConnect`; strace shows `setsockopt(TCP_NODELAY)`
 * on each). What stalled sends by 40–48 ms was the server's Nagle on replies
 * to pipelined commands: `_smtp_no_pipelining.ts` turns pipelining off.
 *
 * The password never travels unencrypted unless `smtp.allow_insecure_auth`
 * says so. Nodemailer sends AUTH in the clear when the server offers no
 * STARTTLS, and with `opportunisticTLS` skips AUTH without a word when
 * STARTTLS is offered but refused (every send then fails with 530); it has
 * no option against either. The mechanism:
 * - `forceAuth` makes Nodemailer run AUTH whenever a username is set, also
 *   when the server did not advertise it, so a session that cannot
 *   authenticate fails (the health check included) instead of going on
 *   without AUTH;
 * - `getSocket`, Nodemailer's documented hook for proxies, hands it a TCP
 *   socket we opened (Nagle off before it connects); on it, a guard looks at
 *   every write that goes out in the clear and destroys the socket, with an
 *   `EINSECURE` error, before an `AUTH` command leaves. Once TLS starts
 *   (implicit TLS or STARTTLS), commands travel inside the TLS socket
 *   Nodemailer layers over ours, and what reaches our socket is TLS records:
 *   the guard stands down at the first one (a TLS handshake record starts
 *   with byte 0x16, which no SMTP command does). It judges the bytes on the
 *   wire, not Nodemailer's state, so it holds whatever path Nodemailer took.
 */
import "./_smtp_no_pipelining.ts";
import "./_smtp_end_of_data_wait.ts";
import "./_smtp_one_write_message.ts";
import { ENVELOPE_GATE, ENVELOPE_GATE_AVAILABLE } from "./_smtp_envelope_gate.ts";
import { poolHandover } from "./_smtp_pool_handover.ts";
import nodemailer, { type SMTPPoolOptions } from "nodemailer";
import net from "node:net";
import { setImmediate } from "node:timers";
import type { SmtpConfig, StarttlsPolicy } from "../config/types.ts";
import {
  abortable,
  isCertificateErrorCode,
  type Mailer,
  MailError,
  type OutgoingEmail,
  type PreparedEmail,
  prepareEmail,
  redact,
  type Redaction,
  scrubError,
  type SentEmail,
  smtpRedaction,
} from "./mailer.ts";
import { messageIdGenerator } from "./message_id.ts";
import { messageComposer } from "./compose.ts";
import { Slots } from "../lib/slots.ts";
import { isPlainAddress } from "../lib/address.ts";
import { systemTrustedCas } from "../lib/system_cas.ts";
import { caOption } from "../lib/_tls_peer_chain_deno.ts";

/** RFC 8314 submission port: TLS from the first byte instead of STARTTLS. */
export const IMPLICIT_TLS_PORT = 465;
/** At most this many SMTP connections at once; a notification burst queues behind them. */
export const MAX_CONNECTIONS = 5;
/**
 * Emails composed and handed to Nodemailer's pool at once; the others wait
 * uncomposed. A burst then holds a few raw messages instead of one per
 * email in flight (hundreds), and the pool still always has the next one.
 */
const MAX_HANDED_OVER = MAX_CONNECTIONS * 2;
/**
 * How long a transaction opened ahead (`openEnvelopes`) waits for its email
 * before it is reset: longer than a claim's write takes, short enough that
 * connections held for an email that does not come are soon free again.
 */
export const OPEN_ENVELOPE_MS = 2_000;
/** Messages sent over one connection before it is replaced (Nodemailer's default). */
const MAX_MESSAGES_PER_CONNECTION = 100;
/** Time to open the TCP (and implicit TLS) connection, DNS included. */
const CONNECTION_TIMEOUT_MS = 10_000;
/** Time from connecting to the server's greeting (and to the end of STARTTLS). */
const GREETING_TIMEOUT_MS = 10_000;
/**
 * Longest silence of the server in the middle of a session; its answer to
 * the message's final "." is waited for longer (`_smtp_end_of_data_wait.ts`).
 */
const SOCKET_TIMEOUT_MS = 10_000;
/** An idle pooled connection is closed (QUIT) before the socket timeout would cut it. */
const IDLE_TIMEOUT_MS = 5_000;

/** The first byte of a TLS handshake record: from it on, our socket carries TLS. */
const TLS_HANDSHAKE_RECORD = 0x16;
/** How much of a write the AUTH guard reads: the command verb and what follows. */
const GUARD_PEEK_BYTES = 64;
/** Our code for AUTH refused over a connection that is not encrypted. */
export const INSECURE_AUTH_CODE = "EINSECURE";

/** Nodemailer's codes for a connection that broke, timed out or never came up. */
const CONNECTION_ERROR_CODES = new Set([
  "ECONNECTION",
  "ESOCKET",
  "ETIMEDOUT",
  "EDNS",
  "EPROXY",
  "ETLS",
]);

/** System error codes of a failed DNS lookup (Nodemailer calls those `EDNS`). */
const DNS_ERROR_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME"]);

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
  /** How long a transaction opened ahead waits for its email; default `OPEN_ENVELOPE_MS`. */
  readonly openEnvelopeMs?: number;
  /** The message composer (tests count what it composes); default `messageComposer`. */
  readonly messageComposer?: typeof messageComposer;
}

export { systemTrustedCas } from "../lib/system_cas.ts";

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

/** The options Nodemailer passes to `getSocket` that we read. */
interface SocketRequest {
  host?: string;
  port?: number;
  connectionTimeout?: number;
  /** When Nodemailer started connecting; the connection timeout counts from there. */
  connectStartedAt?: number;
}

type GetSocket = (
  options: SocketRequest,
  callback: (err: Error | null, socketOptions?: { connection: net.Socket }) => void,
) => void;

/**
 * Arms the AUTH guard on `socket` (see the top of the file): every write made
 * in the clear is looked at, and an AUTH command destroys the socket instead
 * of leaving. `policy` only words the error.
 */
function guardCleartextAuth(socket: net.Socket, policy: StarttlsPolicy): void {
  const write = socket.write;
  let armed = true;
  let starttlsSent = false;
  const guarded = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (armed) {
      const bytes = typeof chunk === "string"
        ? new TextEncoder().encode(chunk.slice(0, GUARD_PEEK_BYTES))
        : chunk instanceof Uint8Array
        ? chunk.subarray(0, GUARD_PEEK_BYTES)
        : undefined;
      if (bytes !== undefined && bytes[0] === TLS_HANDSHAKE_RECORD) {
        armed = false;
      } else if (bytes !== undefined) {
        const head = String.fromCharCode(...bytes);
        if (/^STARTTLS\b/im.test(head)) starttlsSent = true;
        if (/^AUTH\b/im.test(head)) {
          const why = policy === "disabled"
            ? 'smtp.starttls_policy is "disabled"'
            : starttlsSent
            ? "the server refused STARTTLS"
            : "the server offered no STARTTLS";
          const error = Object.assign(
            new Error(
              `refusing to send the password unencrypted: ${why} ` +
                "(smtp.allow_insecure_auth = true would allow it)",
            ),
            { code: INSECURE_AUTH_CODE },
          );
          this.destroy(error);
          return false;
        }
      }
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  };
  socket.write = guarded as typeof socket.write;
}

/**
 * Nodemailer's `getSocket` hook: a TCP socket to the server, connected, Nagle
 * off, with the AUTH guard when `guard` is set. Errors carry Nodemailer's
 * codes (`ESOCKET`, `EDNS`, `ETIMEDOUT`) with the system code kept as
 * `originalCode`, as Nodemailer's own connect reports them.
 */
function socketFactory(guard: StarttlsPolicy | undefined): GetSocket {
  return (options, callback) => {
    const started = options.connectStartedAt ?? Date.now();
    const budget = (options.connectionTimeout ?? CONNECTION_TIMEOUT_MS) - (Date.now() - started);
    const socket = net.connect({ host: options.host ?? "localhost", port: options.port ?? 25 });
    socket.setNoDelay(true);
    let settled = false;
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("connect", onConnect);
      if (err !== null) {
        socket.destroy();
        return callback(err);
      }
      if (guard !== undefined) guardCleartextAuth(socket, guard);
      callback(null, { connection: socket });
    };
    const onError = (err: Error & { code?: string; originalCode?: string }) => {
      const system = err.code;
      if (system !== undefined) err.originalCode ??= system;
      err.code = system !== undefined && DNS_ERROR_CODES.has(system) ? "EDNS" : "ESOCKET";
      settle(err);
    };
    const onConnect = () => settle(null);
    const timer = setTimeout(() => {
      settle(Object.assign(new Error("Connection timeout"), { code: "ETIMEDOUT" }));
    }, Math.max(0, budget));
    socket.once("error", onError);
    socket.once("connect", onConnect);
  };
}

/** The Nodemailer pool options for `cfg` (pure; the password is read here only). */
export function smtpTransportOptions(
  cfg: SmtpConfig,
  trustedCas: readonly string[],
  timeouts: SmtpTimeouts = DEFAULT_SMTP_TIMEOUTS,
): SMTPPoolOptions & { pool: true } {
  const secure = cfg.port === IMPLICIT_TLS_PORT;
  const ca = cfg.ca === undefined ? [...trustedCas] : [...trustedCas, cfg.ca];
  // The guard is needed where the password could meet a connection without TLS.
  const guard = cfg.username !== undefined && !secure && cfg.allowInsecureAuth !== true
    ? cfg.starttlsPolicy
    : undefined;
  return {
    host: cfg.host,
    port: cfg.port,
    secure,
    ...(secure ? {} : starttlsOptions(cfg.starttlsPolicy)),
    ...(cfg.username === undefined ? {} : {
      auth: { user: cfg.username, pass: cfg.password?.reveal() ?? "" },
      // AUTH even when not advertised: a session that cannot authenticate fails.
      forceAuth: true,
    }),
    getSocket: socketFactory(guard) as SMTPPoolOptions["getSocket"],
    // Nodemailer verifies against the host name (SNI included) unless the host is an IP.
    // (caOption: see _tls_peer_chain_deno.ts, the long CA list's cost per handshake.)
    tls: { ...caOption([...new Set(ca)]), rejectUnauthorized: true },
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
  /** The SMTP command that failed ("RCPT TO", "DATA", "AUTH PLAIN", "CONN", "API"…). */
  command?: unknown;
  rejectedErrors?: unknown;
  /** An `AggregateError`'s parts: one failed connect per address of the host. */
  errors?: unknown;
}

function stringField(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * A refusal to relay ("554 5.7.1 <a@b.c>: Relay access denied", "550 relaying
 * denied", Exchange's "550 5.7.54 Unable to relay"; the words next to each
 * other, so that "relay" in an address or a `relay=` field does not count):
 * given to every recipient at RCPT TO when the session lost its right to
 * relay (its login, an allowed address), so a session failure too.
 */
const RELAY_DENIED =
  /\b(?:relay(?:ing)?(?:\s+access)?\s+(?:is\s+)?(?:denied|not\s+permitted|not\s+allowed|prohibited)|unable\s+to\s+relay)\b/i;
/** An address in angle brackets: a reply's echo of the recipient, not its reason. */
const BRACKETED_ADDRESS = /<[^>]*>/g;

/** The commands whose refusal is about this email or its recipient, not the session. */
const MESSAGE_COMMANDS = new Set(["RCPT TO", "DATA"]);

/**
 * Permanent only when the server refused this email: a 5xx (but 503) to its
 * RCPT TO or DATA, or a message the client cannot send at all. A refused
 * session (greeting, STARTTLS, certificate, AUTH, MAIL FROM: a rotated
 * password, an expired certificate, a relay that now wants TLS) is the mailer
 * being down for every email until someone fixes it: transient, so that no
 * recipient is given up on for it. So are 4xx replies, broken connections and
 * timeouts.
 */
function isTransient(
  status: number | undefined,
  code: string | undefined,
  original: string | undefined,
  command: string | undefined,
  response: string | undefined,
) {
  if (status !== undefined) {
    return status < 500 || status === 503 || command === undefined ||
      !MESSAGE_COMMANDS.has(command) ||
      RELAY_DENIED.test((response ?? "").replace(BRACKETED_ADDRESS, ""));
  }
  if (isCertificateErrorCode(original) || code === "EAUTH") return true;
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
    /** The password and its AUTH encodings (`smtpRedaction`), or the bare password. */
    password?: string | Redaction | undefined;
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
    transient: isTransient(status, code, original, stringField(e.command), response),
    ...(finalCode === undefined ? {} : { code: finalCode }),
    ...(status === undefined ? {} : { status }),
    ...(response === undefined ? {} : { response: redact(response, context.password) }),
    ...(recipient === undefined ? {} : { recipient }),
    server: context.server,
    cause: scrubError(err, context.password),
  });
}

/** A transaction opened ahead for `to` (see `_smtp_envelope_gate.ts`). */
interface OpenedEnvelope {
  readonly to: string;
  /** Resolved: DATA and the message go; rejected: RSET. */
  readonly gate: PromiseWithResolvers<void>;
  /** The message, given once its email comes (never rejected: the gate is). */
  readonly content: PromiseWithResolvers<string>;
  /** Aborts the transaction's send (its email's send was stopped). */
  readonly abort: AbortController;
  /** Nodemailer's send of the transaction. */
  readonly sending: Promise<unknown>;
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
  // Raw messages go to the pool below `sendMail` (see the extension), where Nodemailer allows.
  const handover = poolHandover(transporter);
  const compose = (deps.messageComposer ?? messageComposer)(sender);
  const handedOver = new Slots(MAX_HANDED_OVER);
  const server = `${cfg.host}:${cfg.port}`;
  const password = smtpRedaction(cfg.username, cfg.password?.reveal());
  const messageIds = new WeakMap<OutgoingEmail, string>();
  /** Transactions opened ahead, by recipient, waiting before DATA for their email. */
  const opened = new Map<string, OpenedEnvelope>();
  let closed = false;

  /** Resets (RSET) a transaction opened ahead that no email took. */
  const drop = (entry: OpenedEnvelope, why: string) => {
    if (opened.get(entry.to) !== entry) return;
    opened.delete(entry.to);
    entry.gate.reject(new Error(why));
  };

  const sendError = (err: unknown, prepared: PreparedEmail, signal: AbortSignal | undefined) => {
    if (signal?.aborted) return signal.reason;
    return smtpMailError(err, { what: "send", server, recipient: prepared.to, password });
  };

  /** Sends `prepared` through the pool, as one of at most `MAX_HANDED_OVER`. */
  const sendPooled = async (
    prepared: PreparedEmail,
    messageId: string,
    signal: AbortSignal | undefined,
  ): Promise<SentEmail> => {
    await handedOver.acquire(signal);
    try {
      const { envelope, raw } = await compose(prepared, messageId);
      if (handover !== undefined) {
        await handover(envelope, raw, `<${messageId}>`, signal);
      } else {
        await transporter.sendMail({
          envelope: { from: envelope.from, to: [...envelope.to] },
          raw,
          // The raw message has it already; given, Nodemailer does not make one it would not send.
          messageId: `<${messageId}>`,
          ...(signal === undefined ? {} : { signal }),
        });
      }
    } catch (err) {
      throw sendError(err, prepared, signal);
    } finally {
      handedOver.release();
    }
    return { messageId };
  };

  /** Sends `prepared` as the message of a transaction opened ahead for its recipient. */
  const sendOpened = async (
    entry: OpenedEnvelope,
    prepared: PreparedEmail,
    messageId: string,
    signal: AbortSignal | undefined,
  ): Promise<SentEmail> => {
    opened.delete(entry.to);
    let raw: string;
    try {
      signal?.throwIfAborted();
      ({ raw } = await compose(prepared, messageId));
    } catch (err) {
      entry.gate.reject(err);
      throw sendError(err, prepared, signal);
    }
    // Stopped mid-send: Nodemailer's own abort, as for any send (the transaction's send was
    // given a signal of its own, not knowing this one yet).
    const onAbort = () => entry.abort.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // A connection that breaks before the message is read: Nodemailer's pool sends it on
      // another one, with the same envelope and gate, from a new stream of the same content.
      entry.content.resolve(raw);
      entry.gate.resolve();
      await entry.sending;
    } catch (err) {
      throw sendError(err, prepared, signal);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return { messageId };
  };

  return {
    async send(email: OutgoingEmail, signal?: AbortSignal): Promise<SentEmail> {
      signal?.throwIfAborted();
      const prepared = prepareEmail(email);
      // Tries of one email (the notifier passes the same object again) share its Message-ID: a
      // copy delivered by a try whose answer was lost is then a duplicate mail systems and
      // clients can recognise.
      let messageId = messageIds.get(email);
      if (messageId === undefined) messageIds.set(email, messageId = nextMessageId());
      const ahead = opened.get(prepared.to);
      // Awaited here: what `prepareEmail` or the signal throws above is a rejection too.
      if (ahead !== undefined) return await sendOpened(ahead, prepared, messageId, signal);
      return await sendPooled(prepared, messageId, signal);
    },

    prepare(content): () => void {
      if (opened.size === 0) return compose.prepare(content.text, content.html);
      // Transactions were opened ahead (a new request's, just before): Nodemailer's pool
      // writes their MAIL FROM on a turn of setImmediate after `sendMail` (where it serves its
      // queue); composing waits a turn more, to be clear of it. Composed now, the body would
      // hold those commands back by its CPU time; composed after them, it runs while their
      // replies are on the way.
      let forget: (() => void) | undefined;
      let forgotten = false;
      setImmediate(() =>
        setImmediate(() => {
          if (!forgotten && !closed) forget = compose.prepare(content.text, content.html);
        })
      );
      return () => {
        forgotten = true;
        forget?.();
      };
    },

    openEnvelopes(recipients: readonly string[]): () => void {
      // Only a mailer with nothing else to do: in a burst, connections held for an email that
      // waits for its claim would hold up emails ready to go.
      if (
        closed || !ENVELOPE_GATE_AVAILABLE || handover === undefined || !handedOver.idle ||
        opened.size > 0
      ) {
        return () => {};
      }
      // Only the recipients and a weak set are kept until the release: an entry taken by its
      // email (or failed) is not held on to for the rest of OPEN_ENVELOPE_MS.
      const mine: string[] = [];
      const own = new WeakSet<OpenedEnvelope>();
      for (const to of new Set(recipients)) {
        if (mine.length >= MAX_CONNECTIONS || !isPlainAddress(to)) continue;
        if (!handedOver.tryAcquire()) break;
        const gate = Promise.withResolvers<void>();
        // Rejected when the email does not come; Nodemailer reports that, not us.
        gate.promise.catch(() => {});
        const content = Promise.withResolvers<string>();
        const abort = new AbortController();
        // Its Message-ID is not known yet (Nodemailer's logs would show it, and are off).
        const sending = handover(
          { from: sender, to: [to], [ENVELOPE_GATE]: gate.promise },
          content.promise,
          "",
          abort.signal,
        );
        const entry: OpenedEnvelope = { to, gate, content, abort, sending };
        // Refused or cut before its email came: that email goes the usual way, and meets the
        // same answer.
        sending.then(() => {}, () => drop(entry, "the transaction failed")).finally(() => {
          handedOver.release();
        });
        opened.set(to, entry);
        own.add(entry);
        mine.push(to);
      }
      if (mine.length === 0) return () => {};
      const release = () => {
        clearTimeout(timer);
        for (const to of mine) {
          const entry = opened.get(to);
          if (entry !== undefined && own.has(entry)) drop(entry, "the email is not sent after all");
        }
      };
      const timer = setTimeout(release, deps.openEnvelopeMs ?? OPEN_ENVELOPE_MS);
      Deno.unrefTimer(timer);
      return release;
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
      closed = true;
      for (const entry of [...opened.values()]) drop(entry, "the mailer is closing");
      transporter.close();
      return Promise.resolve();
    },
  };
}
