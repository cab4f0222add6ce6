/**
 * Extension: a raw message handed to Nodemailer's pool below `sendMail`.
 *
 * Why. The mailer composes every message itself (`compose.ts`), so of all
 * that `sendMail` does for a raw message only one thing is needed: the
 * envelope's addresses normalised. It still builds a mail object, a
 * MailComposer with a MimeNode whose headers it sets and parses back, and per
 * try a PassThrough that the message is piped through: up to a third of the
 * CPU a pooled send costs under Deno (`deno run -A scripts/pool_handover.ts`).
 *
 * How. A pooled transport's `transporter` is Nodemailer's `SMTPPool`. Its
 * `send(mail, callback)` reads `mail.data.signal` (a stop takes the email out
 * of the queue or closes its connection) and, of `mail.message`,
 * `getEnvelope()`, `messageId()`, `getHeader("message-id")` (for its logs)
 * and `createReadStream()`, which it calls once per try: a try on a reused
 * connection that breaks before the message is read goes to another
 * connection and reads a new stream. `poolHandover` gives it just those, the
 * envelope normalised by Nodemailer's own `MimeNode#setEnvelope` as
 * `sendMail` does it (the display name left out, an internationalised
 * domain written as punycode, the envelope's other keys kept, such as
 * `ENVELOPE_GATE`). `_smtp_pool_handover_test.ts` fails if a Nodemailer
 * upgrade changes this; without it (`poolHandover` returns `undefined`) the
 * mailer uses `sendMail`.
 */
import MimeNode from "nodemailer/lib/mime-node";
import type { Transporter } from "nodemailer";
import { Readable } from "node:stream";

/** An envelope as `sendMail` takes it, with keys of its own (such as `ENVELOPE_GATE`). */
export interface HandoverEnvelope {
  readonly from: string;
  readonly to: readonly string[];
  readonly [key: string]: unknown;
}

/** What `SMTPPool#send` reads of a message. */
interface PoolMessage {
  getEnvelope(): Record<string, unknown>;
  messageId(): string;
  getHeader(name: string): string;
  createReadStream(): Readable;
}

interface PoolTransport {
  send(
    mail: { data: { signal?: AbortSignal }; message: PoolMessage },
    callback: (err: Error | null) => void,
  ): unknown;
}

/**
 * Sends `content` (the raw message, or a promise of it: the envelope goes out
 * at once and the message once it is there) to `envelope` through the pool;
 * `messageId` (with angle brackets) is only for Nodemailer's logs.
 */
export type PoolHandover = (
  envelope: HandoverEnvelope,
  content: string | Promise<string>,
  messageId: string,
  signal: AbortSignal | undefined,
) => Promise<void>;

/** A readable stream of `content`, ended once it is there. */
function streamOf(content: string | Promise<string>): Readable {
  const stream = new Readable({ read() {} });
  if (typeof content === "string") {
    stream.push(content);
    stream.push(null);
  } else {
    // Never rejected by the mailer: an email that does not come fails at its gate, before DATA.
    content.then((raw) => {
      if (stream.destroyed) return;
      stream.push(raw);
      stream.push(null);
    }, (err) => stream.destroy(err));
  }
  return stream;
}

/** Whether `transporter` is a pool whose `send` this extension can call. */
function poolOf(transporter: Transporter): PoolTransport | undefined {
  const pool = (transporter as unknown as { transporter?: unknown }).transporter as
    | (Partial<PoolTransport> & { name?: unknown })
    | undefined;
  return typeof pool?.send === "function" && pool.name === "SMTP (pool)"
    ? pool as PoolTransport
    : undefined;
}

/** The hand-over for `transporter` (a pooled SMTP transport), or `undefined` without one. */
export function poolHandover(transporter: Transporter): PoolHandover | undefined {
  const pool = poolOf(transporter);
  if (pool === undefined) return undefined;
  const normalizer = new MimeNode();
  return (envelope, content, messageId, signal) => {
    const normalized = normalizer
      .setEnvelope({ ...envelope, to: [...envelope.to] } as Parameters<MimeNode["setEnvelope"]>[0])
      .getEnvelope() as unknown as { to: string[] };
    const message: PoolMessage = {
      // A copy per try: the connection writes its own fields on the envelope it is given.
      getEnvelope: () => ({ ...normalized, to: [...normalized.to] }),
      messageId: () => messageId,
      getHeader: (name) => (name.toLowerCase() === "message-id" ? messageId : ""),
      createReadStream: () => streamOf(content),
    };
    return new Promise<void>((resolve, reject) => {
      // As `sendMail` does: the pool would only see the stop on its next turn, after a
      // connection that came free meanwhile had started the transaction (and then had to close).
      if (signal?.aborted) return reject(signal.reason);
      pool.send(
        { data: signal === undefined ? {} : { signal }, message },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  };
}
