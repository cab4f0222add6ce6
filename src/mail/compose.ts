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
 * block, each field encoded and folded by Nodemailer's `MimeNode` (the same
 * encoding of Subject and addresses, the same folding), and goes to
 * Nodemailer as a raw message with its envelope. What reaches the server is
 * what Nodemailer alone would compose, but for the order of the header
 * fields and a boundary shared by the emails of one content.
 *
 * A field's line depends on its name and value only, and most repeat from
 * email to email (From, Subject, the reviewers' To, the extra headers): their
 * lines are kept too, so an email's head costs the encoding of its
 * Message-ID and Date. And the body's MIME tree, built by `MailComposer`, is
 * written out here with Nodemailer's own encoders, not through the chain of
 * streams its `build()` pipes (see `composeBody`). `deno run -A
 * scripts/compose_cost.ts` on the AMD EPYC machine: a body 420–510 µs of CPU
 * through the streams, 150–214 µs so; a head 49–51 µs as one `MimeNode`,
 * 23–33 µs from kept lines.
 */
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import MimeNode from "nodemailer/lib/mime-node/index.js";
import * as qp from "nodemailer/lib/qp/index.js";
import * as base64 from "nodemailer/lib/base64/index.js";
import { Buffer } from "node:buffer";
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

/** Header lines kept (name and value → line): a burst's senders, subjects and recipients. */
const MAX_LINES = 512;

/**
 * The parent of the nodes that encode one field each: a node that is not
 * its tree's root gets no mandatory fields (Date, Message-ID, MIME-Version)
 * added, and a fixed boundary spares it the random one it would draw.
 */
const LINE_ROOT = new MimeNode(undefined, { baseBoundary: "line" });

/** One header field as Nodemailer's `MimeNode` writes it: encoded, folded, no line end. */
function headerLine(key: string, value: string): string {
  const node = new MimeNode(undefined, {
    rootNode: LINE_ROOT,
    parentNode: LINE_ROOT,
    baseBoundary: "line",
  });
  node.setHeader(key, value);
  return node.buildHeaders();
}

/** `headerLine`, with the lines of fields seen before kept (at most `MAX_LINES`). */
function lineCache(): (key: string, value: string) => string {
  const lines = new Map<string, string>();
  return (key, value) => {
    // Length first: no name and value pair reads as another.
    const id = `${key.length}:${key}${value}`;
    let line = lines.get(id);
    if (line === undefined) {
      line = headerLine(key, value);
      lines.set(id, line);
      if (lines.size > MAX_LINES) lines.delete(lines.keys().next().value!);
    }
    return line;
  };
}

/** The Date field's value as Nodemailer's root node writes it. */
function dateValue(now: Date): string {
  return now.toUTCString().replace(/GMT/, "+0000");
}

/** What of Nodemailer's `MimeNode` the body's writing reads (its tree, as `compile()` left it). */
interface TreeNode {
  readonly childNodes: TreeNode[];
  readonly content?: unknown;
  readonly _raw?: unknown;
  /** Set by `buildHeaders` (from the node's Content-Type). */
  readonly multipart?: unknown;
  readonly boundary?: string;
  readonly contentType?: string;
  buildHeaders(): string;
  getTransferEncoding(): string | false;
}

/** The part of a Transform stream an encoder's own `_transform`/`_flush` use. */
interface EncoderInternals {
  push(chunk: unknown): boolean;
  _transform(chunk: Buffer, encoding: string, done: (error?: unknown) => void): void;
  _flush(done: (error?: unknown) => void): void;
}

const rethrow = (error?: unknown) => {
  if (error) throw error;
};

/**
 * `content` in `transferEncoding`, as `MimeNode#stream` writes it: through
 * Nodemailer's own encoder (the same slicing, soft breaks and line length),
 * called on the whole content at once instead of through a pipe of streams.
 */
function encodeContent(content: string, transferEncoding: string | false, type: string): string {
  if (transferEncoding !== "quoted-printable" && transferEncoding !== "base64") return content;
  const encoder =
    (transferEncoding === "base64"
      ? new base64.Encoder({})
      : new qp.Encoder({ binary: !/^text\//i.test(type) })) as unknown as EncoderInternals;
  let out = "";
  encoder.push = (chunk: unknown) => {
    if (typeof chunk === "string") out += chunk;
    else if (chunk instanceof Uint8Array) out += Buffer.from(chunk).toString("latin1");
    return true;
  };
  encoder._transform(Buffer.from(content, "utf8"), "buffer", rethrow);
  encoder._flush(rethrow);
  return out;
}

/**
 * The message of `node` and its children, as `MimeNode#stream` writes it
 * (headers, the encoded content, each child behind the boundary, the closing
 * boundary), or undefined where a node holds anything but a string (a
 * stream, a buffer, raw content): those only Nodemailer's streams write.
 */
function writeNode(node: TreeNode): string | undefined {
  if (node._raw) return undefined;
  const transferEncoding = node.getTransferEncoding();
  let out = node.buildHeaders() + HEADER_END;
  if (node.content) {
    if (typeof node.content !== "string") return undefined;
    out += encodeContent(node.content, transferEncoding, node.contentType ?? "");
  }
  if (node.multipart) {
    for (const [i, child] of node.childNodes.entries()) {
      const written = writeNode(child);
      if (written === undefined) return undefined;
      out += `${i > 0 ? "\r\n" : ""}--${node.boundary}\r\n${written}`;
    }
    out += `\r\n--${node.boundary}--\r\n`;
  }
  return out;
}

/** The whole message of a compiled tree, ending in a line end as Nodemailer's output does. */
export function writeMessage(root: TreeNode): string | undefined {
  const out = writeNode(root);
  if (out === undefined || out.endsWith("\n")) return out;
  return out + (out.endsWith("\r") ? "\n" : "\r\n");
}

/**
 * Composes `text` (and `html` as its alternative) with Nodemailer, split
 * into body and its headers. Nodemailer's `MailComposer` builds the MIME
 * tree; the tree is written here without the streams Nodemailer's `build()`
 * pipes it through (the same bytes: `compose_test.ts` compares them; ~0.45
 * ms of CPU a body through the streams, `scripts/compose_cost.ts`).
 */
async function composeBody(text: string, html: string | undefined): Promise<Body> {
  const tree = new MailComposer({ text, ...(html === undefined ? {} : { html }) }).compile();
  const whole = writeMessage(tree as unknown as TreeNode) ?? await built(tree);
  const end = whole.indexOf(HEADER_END);
  if (end < 0) throw new Error("composed message has no header block");
  // Header fields with their continuation lines; only those about the content are kept.
  const fields = whole.slice(0, end).split(/\r\n(?![ \t])/);
  const contentHeaders = fields.filter((field) => /^content-/i.test(field)).join("\r\n");
  return { contentHeaders, content: whole.slice(end + HEADER_END.length) };
}

/** The message of `tree` through Nodemailer's own streams. */
function built(tree: MimeNode): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    tree.build((err, message) => (err ? reject(err) : resolve(message.toString("utf8"))));
  });
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

  const line = lineCache();
  /** The Date line of the latest second (a burst's emails share it). */
  let date = { value: "", line: "" };
  const dateLine = (value: string) => {
    if (date.value !== value) date = { value, line: headerLine("Date", value) };
    return date.line;
  };
  const compose = async (prepared: PreparedEmail, messageId: string) => {
    const body = await bodyFor(prepared.text, prepared.html);
    // The caller's headers first, then the mailer's own, in the order Nodemailer's composer
    // gives them (and a root node's Date and MIME-Version last).
    const head = prepared.headers.map(([key, value]) => line(key, value));
    head.push(line("From", sender), line("To", prepared.to));
    if (prepared.inReplyTo !== undefined) {
      head.push(
        line("In-Reply-To", `<${prepared.inReplyTo}>`),
        line("References", `<${prepared.inReplyTo}>`),
      );
    }
    head.push(
      line("Subject", prepared.subject),
      headerLine("Message-ID", `<${messageId}>`),
      dateLine(dateValue(new Date())),
      line("MIME-Version", "1.0"),
    );
    return {
      envelope: { from: sender, to: [prepared.to] },
      raw: `${head.join("\r\n")}\r\n${body.contentHeaders}${HEADER_END}${body.content}`,
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
