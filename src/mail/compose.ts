/**
 * The SMTP mailer's MIME composition, once per content instead of once per
 * email. A notification goes to each recipient in an email of its own, and
 * the built-in messages are the same text and HTML for all of them; what
 * Nodemailer spends on an email is mostly composing it (quoted-printable
 * encoding of both parts, a stream per part), ~0.7 of its ~1.8 ms of CPU.
 *
 * So the body (everything after the header block: the multipart/alternative
 * parts, or the one text part, and the `Content-*` header fields that go
 * with it) is composed by Nodemailer's `MailComposer` once per distinct
 * text and HTML and kept in a small cache; each email gets its own header
 * block, built by Nodemailer's `MimeNode` (the same encoding of Subject and
 * addresses, the same folding), and goes to Nodemailer as a raw message
 * with its envelope. What reaches the server is what Nodemailer alone would
 * compose, but for the order of the header fields and a boundary shared by
 * the emails of one content.
 */
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import MimeNode from "nodemailer/lib/mime-node/index.js";
import type { PreparedEmail } from "./mailer.ts";

/** What Nodemailer's `sendMail` is given for one email. */
export interface RawSmtpMessage {
  /** `MAIL FROM` (the sender's address, taken from the mailbox) and `RCPT TO`. */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  /** The whole message, header block and body, CRLF line ends. */
  readonly raw: string;
}

/** A composed body and the header fields that describe it. */
interface Body {
  /** The `Content-Type` (and `Content-Transfer-Encoding`) lines, folded, CRLF-separated. */
  readonly contentHeaders: string;
  /** Everything after the blank line that ends the header block. */
  readonly content: string;
}

/** Distinct bodies kept: a burst's notifications are each composed once; memory stays small. */
const MAX_BODIES = 64;
/**
 * Bodies composed ahead of their emails (`prepare`) and kept until used, at
 * most: beyond, in a burst, preparing would only move work earlier, or
 * compose bodies twice once they fell out of the cache before their use.
 */
const MAX_EARLY_BODIES = 8;

const HEADER_END = "\r\n\r\n";

/** Composes `text` (and `html` as its alternative) with Nodemailer, split into body and its headers. */
async function composeBody(text: string, html: string | undefined): Promise<Body> {
  const message = await new Promise<Buffer>((resolve, reject) => {
    new MailComposer({ text, ...(html === undefined ? {} : { html }) })
      .compile()
      .build((err, built) => (err ? reject(err) : resolve(built)));
  });
  const whole = message.toString("utf8");
  const end = whole.indexOf(HEADER_END);
  if (end < 0) throw new Error("composed message has no header block");
  // Header fields with their continuation lines; only those about the content are kept.
  const fields = whole.slice(0, end).split(/\r\n(?![ \t])/);
  const contentHeaders = fields.filter((field) => /^content-/i.test(field)).join("\r\n");
  return { contentHeaders, content: whole.slice(end + HEADER_END.length) };
}

/** Turns a prepared email and its Message-ID (without brackets) into the raw message. */
export interface MessageComposer {
  (prepared: PreparedEmail, messageId: string): Promise<RawSmtpMessage>;
  /**
   * Starts composing the body of `text` (and `html`) now, for emails to be
   * composed soon: they find it ready. A failure is left for them to meet.
   * The function returned drops the body again if no email used it yet
   * (the emails are not coming after all).
   */
  prepare(text: string, html: string | undefined): () => void;
  /** Bodies composed so far (diagnostics, tests). */
  readonly bodiesComposed: number;
}

/**
 * A composer sending as `sender` (a mailbox, possibly with a display name):
 * turns a prepared email and its Message-ID (without brackets) into the raw
 * message Nodemailer sends. Emails with the same text and HTML share one
 * composed body.
 */
export function messageComposer(sender: string): MessageComposer {
  const bodies = new Map<string, Promise<Body>>();
  /** Bodies composed ahead (`prepare`) that no email used yet, oldest first. */
  const early = new Map<string, { body: Promise<Body>; usedBefore: number }>();
  /** How many early bodies emails used so far. */
  let used = 0;
  let composed = 0;

  // Length first: no text and HTML pair can be read as another.
  const keyOf = (text: string, html: string | undefined) =>
    html === undefined ? `t${text}` : `h${text.length}:${text}${html}`;

  const newBody = (text: string, html: string | undefined) => {
    composed++;
    return composeBody(text, html);
  };

  const bodyFor = (text: string, html: string | undefined): Promise<Body> => {
    const key = keyOf(text, html);
    let body = bodies.get(key);
    if (body === undefined) {
      const ready = early.get(key);
      if (ready !== undefined) {
        early.delete(key);
        used++;
      }
      body = ready?.body ?? newBody(text, html);
      bodies.set(key, body);
      const composing = body;
      // A failed composition is forgotten (only if it is still the one kept), not cached.
      composing.catch(() => {
        if (bodies.get(key) === composing) bodies.delete(key);
      });
      // Oldest first out: a Map keeps insertion order.
      if (bodies.size > MAX_BODIES) bodies.delete(bodies.keys().next().value!);
    }
    return body;
  };

  const compose = async (prepared: PreparedEmail, messageId: string) => {
    const body = await bodyFor(prepared.text, prepared.html);
    const head = new MimeNode();
    // The caller's headers first, then the mailer's own, as Nodemailer's composer orders them.
    head.addHeader(prepared.headers.map(([key, value]) => ({ key, value })));
    head.setHeader("From", sender);
    head.setHeader("To", prepared.to);
    if (prepared.inReplyTo !== undefined) {
      head.setHeader("In-Reply-To", `<${prepared.inReplyTo}>`);
      head.setHeader("References", `<${prepared.inReplyTo}>`);
    }
    head.setHeader("Subject", prepared.subject);
    head.setHeader("Message-ID", `<${messageId}>`);
    return {
      envelope: { from: sender, to: [prepared.to] },
      raw: `${head.buildHeaders()}\r\n${body.contentHeaders}${HEADER_END}${body.content}`,
    };
  };
  const keep = () => {};
  const prepare = (text: string, html: string | undefined) => {
    const key = keyOf(text, html);
    if (bodies.has(key) || early.has(key)) return keep;
    if (early.size >= MAX_EARLY_BODIES) {
      // Full: a burst (the bodies ahead are used first, the rest are composed when sent, once
      // each), unless the oldest waited while as many later ones were used: its emails are
      // not coming and nobody said so (see the function returned), and it makes room.
      const [oldestKey, oldest] = early.entries().next().value!;
      if (used - oldest.usedBefore < MAX_EARLY_BODIES) return keep;
      early.delete(oldestKey);
    }
    const body = newBody(text, html);
    early.set(key, { body, usedBefore: used });
    const forget = () => {
      if (early.get(key)?.body === body) early.delete(key);
    };
    // A failed body is not kept: the emails that need it compose it again (and meet the error).
    body.catch(forget);
    return forget;
  };
  const composer: MessageComposer = Object.assign(compose, { prepare, bodiesComposed: 0 });
  Object.defineProperty(composer, "bodiesComposed", { get: () => composed });
  return composer;
}
