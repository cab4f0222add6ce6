/**
 * A real SMTP server for tests (the `smtp-server` package) on 127.0.0.1:0:
 * STARTTLS or implicit TLS with a given certificate, optional required AUTH,
 * scripted failures, a STARTTLS that is offered and then refused, AUTH
 * attempts recorded (and whether they came in the clear), replies that echo
 * the credentials, and the received messages parsed just enough to check
 * what a mailer wrote (headers decoded, quoted-printable/base64 bodies,
 * nested multiparts). Torn down hard by `close()`.
 */
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import type net from "node:net";
import { arrivals } from "./arrivals.ts";

/** How long `close()` lets smtp-server say goodbye before sockets are destroyed. */
const CLOSE_GRACE_MS = 100;
/** Default wait of `waitFor`. */
const DEFAULT_WAIT_MS = 5_000;

/** An SMTP reply, e.g. `{ code: 421, message: "Try again later" }`. */
export interface SmtpReply {
  code: number;
  message: string;
}

export interface FakeSmtpOptions {
  /** Interface to bind; default `127.0.0.1`. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Server certificate and key (PEM); needed for STARTTLS and implicit TLS. */
  tls?: { cert: string; key: string };
  /** Implicit TLS from the first byte (the "port 465" mode); needs `tls`. */
  secure?: boolean;
  /** Offer STARTTLS; default true when `tls` is given and `secure` is not. */
  starttls?: boolean;
  /** AUTH required with exactly these credentials; absent: no AUTH offered. */
  auth?: { username: string; password: string };
  /** SASL mechanisms offered with `auth`; default PLAIN and LOGIN. */
  authMethods?: string[];
  /**
   * Offer STARTTLS (as `starttls` does) but answer the command with this
   * reply, as a server with a broken TLS setup or a middlebox that strips it.
   * AUTH is then accepted in the clear, as a careless server would.
   */
  refuseStarttls?: SmtpReply;
  /**
   * A failed AUTH is answered with the credentials echoed back as the client
   * sent them: the AUTH PLAIN blob, the base64 password of AUTH LOGIN and the
   * password itself (servers that log or echo "what they got" exist).
   */
  echoCredentials?: boolean;
  /** Reply to the first `count` MAIL FROM commands with `reply`. */
  failMailFrom?: { count: number; reply: SmtpReply };
  /** Reply to the first `count` messages (after DATA) with `reply`. */
  failData?: { count: number; reply: SmtpReply };
  /** Reply to RCPT TO of these addresses (lower case) with the given reply. */
  rejectRecipients?: Record<string, SmtpReply>;
  /**
   * Hold the reply to DATA of messages to these addresses (lower case) until
   * `release()`: the client waits, as on a stalled server. A held message
   * whose connection closes is dropped (never accepted). `"*"` holds every message.
   */
  stallRecipients?: string[];
}

/** One MIME part after transfer decoding. */
export interface MimePart {
  /** Unfolded headers in order, values as written (not RFC 2047 decoded). */
  headers: Array<[string, string]>;
  /** `type/subtype`, lower case; `text/plain` when absent. */
  contentType: string;
  /** Decoded body of a leaf part (charset applied); empty for a multipart. */
  body: string;
  /** Children of a multipart. */
  parts: MimePart[];
}

export interface ReceivedMessage {
  envelope: { from: string; to: string[] };
  /** The message as received (dot-stuffing undone). */
  raw: string;
  /** The parsed message; `header()` reads its headers. */
  mime: MimePart;
  /** First value of a header, RFC 2047 decoded; case-insensitive name. */
  header(name: string): string | undefined;
  /** Every value of a header, as written. */
  headerAll(name: string): string[];
  /** Body of the first `text/plain` part, decoded. */
  text?: string;
  /** Body of the first `text/html` part, decoded. */
  html?: string;
  /** Whether the session was TLS (implicit or STARTTLS) when the message came. */
  secure: boolean;
  /** The authenticated username, if the client logged in. */
  user?: string;
}

export interface FakeSmtpServer {
  readonly host: string;
  readonly port: number;
  /** Messages accepted so far, in order. */
  readonly messages: ReceivedMessage[];
  /** Every MAIL FROM seen (including refused ones). */
  readonly mailFromCount: number;
  /** Connections accepted so far. */
  readonly connectionCount: number;
  /** Failed AUTH attempts, with the username tried. */
  readonly authFailures: string[];
  /** Every AUTH received, in order: who, and whether the session was encrypted then. */
  readonly authAttempts: Array<{ username: string; secure: boolean }>;
  /** Messages held by `stallRecipients` right now (on open connections). */
  readonly stalledCount: number;
  /** Stops stalling and accepts the held messages. */
  release(): void;
  /** Starts stalling messages to these addresses (as the `stallRecipients` option; `"*"`: all). */
  stall(recipients: string[]): void;
  /** Resolves with the messages once at least `n` arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  /** Stops listening and destroys every open connection. */
  close(): Promise<void>;
}

function smtpError(reply: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

/** Starts a fake SMTP server; see `FakeSmtpOptions`. */
export async function startSmtpServer(opts: FakeSmtpOptions = {}): Promise<FakeSmtpServer> {
  const messages: ReceivedMessage[] = [];
  const authFailures: string[] = [];
  const authAttempts: Array<{ username: string; secure: boolean }> = [];
  const sockets = new Set<net.Socket>();
  const received = arrivals(messages, "messages");
  let mailFromCount = 0;
  let dataCount = 0;
  let connectionCount = 0;
  let stall = new Set((opts.stallRecipients ?? []).map((r) => r.toLowerCase()));
  const held: Array<{ sessionId: string; accept: () => void }> = [];

  const starttls = opts.refuseStarttls !== undefined ||
    (opts.starttls ?? (opts.tls !== undefined && !opts.secure));
  const disabledCommands: string[] = [];
  if (!starttls) disabledCommands.push("STARTTLS");
  if (!opts.auth) disabledCommands.push("AUTH");

  const options: SMTPServerOptions = {
    logger: false,
    secure: opts.secure ?? false,
    disabledCommands,
    authOptional: !opts.auth,
    ...(opts.authMethods ? { authMethods: opts.authMethods } : {}),
    ...(opts.refuseStarttls ? { allowInsecureAuth: true } : {}),
    closeTimeout: CLOSE_GRACE_MS,
    ...(opts.tls ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
    onConnect(_session, callback) {
      connectionCount++;
      if (opts.refuseStarttls) refuseStarttlsOnNewConnections(opts.refuseStarttls);
      callback();
    },
    onClose(session) {
      for (let i = held.length - 1; i >= 0; i--) {
        if (held[i]!.sessionId === session.id) held.splice(i, 1);
      }
    },
    onAuth(auth, session, callback) {
      authAttempts.push({ username: auth.username ?? "", secure: session.secure });
      const want = opts.auth;
      if (want && auth.username === want.username && auth.password === want.password) {
        return callback(null, { user: auth.username });
      }
      authFailures.push(auth.username ?? "");
      let message = "5.7.8 Authentication credentials invalid";
      if (opts.echoCredentials) {
        const user = auth.username ?? "";
        const pass = auth.password ?? "";
        message += `: got ${base64(`\0${user}\0${pass}`)} / ${base64(user)} ${base64(pass)}` +
          ` (${pass})`;
      }
      callback(smtpError({ code: 535, message }));
    },
    onMailFrom(_address, _session, callback) {
      mailFromCount++;
      const fail = opts.failMailFrom;
      if (fail && mailFromCount <= fail.count) return callback(smtpError(fail.reply));
      callback();
    },
    onRcptTo(address, _session, callback) {
      const reply = opts.rejectRecipients?.[address.address.toLowerCase()];
      if (reply) return callback(smtpError(reply));
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Uint8Array[] = [];
      stream.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      stream.on("end", () => {
        dataCount++;
        const fail = opts.failData;
        if (fail && dataCount <= fail.count) return callback(smtpError(fail.reply));
        const accept = () => {
          messages.push(receivedMessage(concat(chunks), session));
          received.arrived();
          callback();
        };
        const stalled = stall.has("*") ||
          session.envelope.rcptTo.some((r) => stall.has(r.address.toLowerCase()));
        if (stalled) held.push({ sessionId: session.id, accept });
        else accept();
      });
    },
  };
  const server = new SMTPServer(options);
  /** Gives every connection not yet seen a STARTTLS handler that answers `reply`. */
  const refused = new WeakSet<object>();
  function refuseStarttlsOnNewConnections(reply: SmtpReply) {
    // smtp-server looks its command handlers up on the connection (`handler_<VERB>`).
    const connections = (server as unknown as { connections: Set<StarttlsHandler> }).connections;
    for (const connection of connections) {
      if (refused.has(connection)) continue;
      refused.add(connection);
      connection.handler_STARTTLS = function (_command, callback) {
        this.send(reply.code, reply.message);
        callback();
      };
    }
  }
  // Client-side resets (a test's aborted handshake, say) are expected here.
  server.on("error", () => {});
  server.server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.server.off("error", reject);
      resolve();
    });
  });
  const address = server.server.address() as net.AddressInfo;

  return {
    host: address.address,
    port: address.port,
    messages,
    get mailFromCount() {
      return mailFromCount;
    },
    get connectionCount() {
      return connectionCount;
    },
    authFailures,
    authAttempts,
    get stalledCount() {
      return held.length;
    },
    release() {
      stall = new Set();
      for (const { accept } of held.splice(0)) accept();
    },
    stall(recipients) {
      stall = new Set(recipients.map((r) => r.toLowerCase()));
    },
    async waitFor(n, timeoutMs = DEFAULT_WAIT_MS) {
      await received.waitFor(n, timeoutMs);
      return messages;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** The part of smtp-server's connection a refused STARTTLS replaces. */
interface StarttlsHandler {
  handler_STARTTLS(this: StarttlsHandler, command: unknown, callback: () => void): void;
  send(code: number, message: string): void;
}

function base64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function receivedMessage(bytes: Uint8Array, session: SMTPServerSession): ReceivedMessage {
  // Bytes to a string of the same code units, so that decoding happens per part.
  const raw = latin1(bytes);
  // The CRLF before the final "." ends the last line; it is not part of the body.
  const mime = parseMime(raw.replace(/\r\n$/, ""));
  const leaves = leafParts(mime);
  const text = leaves.find((p) => p.contentType === "text/plain")?.body;
  const html = leaves.find((p) => p.contentType === "text/html")?.body;
  const mailFrom = session.envelope.mailFrom;
  return {
    envelope: {
      from: mailFrom ? mailFrom.address : "",
      to: session.envelope.rcptTo.map((r) => r.address),
    },
    raw: new TextDecoder().decode(bytes),
    mime,
    header: (name) => {
      const value = headerValues(mime.headers, name)[0];
      return value === undefined ? undefined : decodeEncodedWords(value);
    },
    headerAll: (name) => headerValues(mime.headers, name),
    secure: session.secure,
    ...(text === undefined ? {} : { text }),
    ...(html === undefined ? {} : { html }),
    ...(typeof session.user === "string" ? { user: session.user } : {}),
  };
}

function latin1(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return out;
}

function bytesOf(latin1Text: string): Uint8Array {
  return Uint8Array.from(latin1Text, (c) => c.charCodeAt(0) & 0xff);
}

function headerValues(headers: Array<[string, string]>, name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
}

function leafParts(part: MimePart): MimePart[] {
  return part.parts.length === 0 ? [part] : part.parts.flatMap(leafParts);
}

/** Splits a header block (CRLF or LF lines) into unfolded `[name, value]` pairs. */
export function parseHeaders(block: string): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  for (const line of block.split(/\r?\n/)) {
    const last = headers[headers.length - 1];
    if (/^[ \t]/.test(line) && last) {
      last[1] += " " + line.trim();
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return headers;
}

/** `text/plain; charset="utf-8"` → `{ type: "text/plain", params: { charset: "utf-8" } }`. */
export function parseContentType(value: string): { type: string; params: Record<string, string> } {
  const [type = "", ...rest] = value.split(";");
  const params: Record<string, string> = {};
  for (const param of rest) {
    const eq = param.indexOf("=");
    if (eq < 0) continue;
    const key = param.slice(0, eq).trim().toLowerCase();
    params[key] = param.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
  }
  return { type: type.trim().toLowerCase() || "text/plain", params };
}

/** Parses a message (a latin1 string of its bytes) into its MIME tree. */
export function parseMime(raw: string): MimePart {
  const split = raw.search(/\r?\n\r?\n/);
  const headerBlock = split < 0 ? raw : raw.slice(0, split);
  const body = split < 0 ? "" : raw.slice(split).replace(/^\r?\n\r?\n/, "");
  const headers = parseHeaders(headerBlock);
  const { type, params } = parseContentType(headerValues(headers, "Content-Type")[0] ?? "");
  if (type.startsWith("multipart/") && params.boundary) {
    return { headers, contentType: type, body: "", parts: splitMultipart(body, params.boundary) };
  }
  const encoding = (headerValues(headers, "Content-Transfer-Encoding")[0] ?? "7bit").toLowerCase();
  const bytes = encoding === "base64"
    ? Uint8Array.from(atob(body.replace(/[^A-Za-z0-9+/=]/g, "")), (c) => c.charCodeAt(0))
    : encoding === "quoted-printable"
    ? decodeQuotedPrintable(body)
    : bytesOf(body);
  const text = new TextDecoder(params.charset ?? "utf-8").decode(bytes);
  return { headers, contentType: type, body: text, parts: [] };
}

function splitMultipart(body: string, boundary: string): MimePart[] {
  const delimiter = "--" + boundary;
  const lines = body.split(/\r?\n/);
  const parts: string[][] = [];
  let current: string[] | undefined;
  for (const line of lines) {
    if (line === delimiter || line === delimiter + "--") {
      if (current) parts.push(current);
      current = line === delimiter ? [] : undefined;
      if (!current) break;
      continue;
    }
    current?.push(line);
  }
  return parts.map((p) => parseMime(p.join("\r\n")));
}

/** Decodes a quoted-printable body (RFC 2045 §6.7) to bytes. */
export function decodeQuotedPrintable(body: string): Uint8Array {
  const text = body.replace(/=\r?\n/g, "");
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** Decodes RFC 2047 encoded words (`=?UTF-8?Q?...?=`, `=?UTF-8?B?...?=`) in a header value. */
export function decodeEncodedWords(value: string): string {
  const word = /=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g;
  // Whitespace between two adjacent encoded words is not part of the text.
  const joined = value.replace(/(\?=)\s+(=\?)/g, "$1$2");
  return joined.replace(word, (_m, charset: string, enc: string, data: string) => {
    const bytes = enc.toUpperCase() === "B"
      ? Uint8Array.from(atob(data), (c) => c.charCodeAt(0))
      : decodeQuotedPrintable(data.replace(/_/g, " "));
    return new TextDecoder(charset.toLowerCase()).decode(bytes);
  });
}
