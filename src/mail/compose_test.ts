import assert from "node:assert/strict";
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import MimeNode from "nodemailer/lib/mime-node/index.js";
import { decodeEncodedWords, parseMime } from "../../tests/smtp_server.ts";
import { type OutgoingEmail, prepareEmail } from "./mailer.ts";
import { messageComposer, writeMessage } from "./compose.ts";
import { Buffer } from "node:buffer";

const SENDER = "Téléport Access <noreply@example.com>";
const CONTENT = {
  subject: "teleport.example.com Role Request ✅ from ünïcode@example.com",
  text: `You have a new Role Request ✅\n${"a long line of the reason ".repeat(12)}\n.\nend`,
  html: `<p>You have a new <b>Role Request</b>: ✅</p>\n<p>${"x".repeat(300)}</p>`,
};

function headersOf(raw: string): Map<string, string> {
  const top = parseMime(raw);
  return new Map(top.headers.map(([name, value]) => [name.toLowerCase(), value]));
}

/**
 * The parts a reader sees: content type and decoded text, in order (line
 * ends as LF, no final one: MIME turns a text's LF into CRLF and ends it).
 */
function partsOf(raw: string): Array<[string, string]> {
  const top = parseMime(raw);
  const leaves = top.parts.length === 0 ? [top] : top.parts;
  return leaves.map((
    part,
  ) => [part.contentType, part.body.replace(/\r\n/g, "\n").replace(/\n$/, "")]);
}

function bodyOf(raw: string): string {
  return raw.slice(raw.indexOf("\r\n\r\n") + 4);
}

/** The body with its multipart boundary (random per message) replaced by a fixed word. */
function bodyWithoutBoundary(raw: string): string {
  const boundary = /boundary="([^"]+)"/.exec(raw.slice(0, raw.indexOf("\r\n\r\n")))?.[1];
  const body = bodyOf(raw);
  return boundary === undefined ? body : body.replaceAll(boundary, "BOUNDARY");
}

function nodemailerAlone(email: OutgoingEmail, messageId: string): Promise<string> {
  const prepared = prepareEmail(email);
  return new Promise((resolve, reject) => {
    new MailComposer({
      from: SENDER,
      to: prepared.to,
      subject: prepared.subject,
      text: prepared.text,
      ...(prepared.html === undefined ? {} : { html: prepared.html }),
      messageId: `<${messageId}>`,
      ...(prepared.inReplyTo === undefined
        ? {}
        : { inReplyTo: `<${prepared.inReplyTo}>`, references: `<${prepared.inReplyTo}>` }),
      headers: Object.fromEntries(prepared.headers),
    }).compile().build((err, built) => (err ? reject(err) : resolve(built.toString("latin1"))));
  });
}

Deno.test("compose: a message reads as the one Nodemailer composes alone, all 7-bit", async () => {
  const compose = messageComposer(SENDER);
  const email = { to: "alice@example.com", ...CONTENT, inReplyTo: "<thread-1@example.com>" };
  const ours = (await compose(prepareEmail(email), "m-1@example.com")).raw;
  const alone = await nodemailerAlone(email, "m-1@example.com");

  assert.match(ours, /^[\x20-\x7e\r\n\t]*$/, "only 7-bit ASCII goes on the wire");
  assert.equal(bodyWithoutBoundary(ours), bodyWithoutBoundary(alone));
  assert.deepEqual(partsOf(ours), [["text/plain", CONTENT.text], ["text/html", CONTENT.html]]);
  const mine = headersOf(ours);
  const theirs = headersOf(alone);
  for (const name of theirs.keys()) {
    if (name === "date" || name === "content-type") continue;
    assert.equal(mine.get(name), theirs.get(name), name);
  }
  assert.deepEqual([...mine.keys()].sort(), [...theirs.keys()].sort());
  assert.match(mine.get("content-type")!, /^multipart\/alternative;\s*boundary="[^"]+"$/);
  assert.equal(decodeEncodedWords(mine.get("subject")!), CONTENT.subject);
  assert.equal(decodeEncodedWords(mine.get("from")!), SENDER);
  assert.equal(mine.get("in-reply-to"), "<thread-1@example.com>");
  assert.equal(mine.get("references"), "<thread-1@example.com>");
  assert.equal(mine.get("auto-submitted"), "auto-generated");
});

Deno.test("compose: the emails of one content share its body, each with its own head", async () => {
  const compose = messageComposer(SENDER);
  const [a, b] = await Promise.all([
    compose(prepareEmail({ to: "alice@example.com", ...CONTENT }), "m-a@example.com"),
    compose(prepareEmail({ to: "bob@example.com", ...CONTENT }), "m-b@example.com"),
  ]);
  assert.equal(bodyOf(a!.raw), bodyOf(b!.raw));
  assert.equal(headersOf(a!.raw).get("to"), "alice@example.com");
  assert.equal(headersOf(b!.raw).get("to"), "bob@example.com");
  assert.equal(headersOf(a!.raw).get("message-id"), "<m-a@example.com>");
  assert.equal(headersOf(b!.raw).get("message-id"), "<m-b@example.com>");
  assert.deepEqual(a!.envelope, { from: SENDER, to: ["alice@example.com"] });
  assert.deepEqual(b!.envelope, { from: SENDER, to: ["bob@example.com"] });

  // Another text (as a template may make per recipient) gets a body of its own.
  const c = await compose(
    prepareEmail({ to: "carol@example.com", ...CONTENT, text: "Only for Carol ✅" }),
    "m-c@example.com",
  );
  assert.notEqual(bodyOf(c.raw), bodyOf(a!.raw));
  assert.deepEqual(partsOf(c.raw), [["text/plain", "Only for Carol ✅"], [
    "text/html",
    CONTENT.html,
  ]]);
  // A text equal to another's text followed by its HTML is not mistaken for it.
  const d = await compose(
    prepareEmail({ to: "dave@example.com", subject: "s", text: CONTENT.text + CONTENT.html }),
    "m-d@example.com",
  );
  assert.deepEqual(partsOf(d.raw), [["text/plain", CONTENT.text + CONTENT.html]]);
});

Deno.test("compose: a text-only email keeps its content type and transfer encoding", async () => {
  const compose = messageComposer(SENDER);
  const email = { to: "alice@example.com", subject: "plain", text: "Grüße ✅\nline two" };
  const ours = (await compose(prepareEmail(email), "m-t@example.com")).raw;
  const alone = await nodemailerAlone(email, "m-t@example.com");
  assert.equal(bodyOf(ours), bodyOf(alone));
  assert.deepEqual(partsOf(ours), [["text/plain", email.text]]);
  const mine = headersOf(ours);
  const theirs = headersOf(alone);
  assert.equal(mine.get("content-type"), theirs.get("content-type"));
  assert.equal(mine.get("content-transfer-encoding"), theirs.get("content-transfer-encoding"));
  assert.equal(mine.get("mime-version"), "1.0");
});

Deno.test("compose: many distinct contents in a row each compose correctly", async () => {
  const compose = messageComposer(SENDER);
  // More contents than the cache keeps, then the first again: composed anew, not lost.
  for (let i = 0; i < 70; i++) {
    const text = `request ${i}`;
    const { raw } = await compose(prepareEmail({ to: "a@example.com", subject: "s", text }), "m");
    assert.deepEqual(partsOf(raw), [["text/plain", text]]);
  }
  const { raw } = await compose(
    prepareEmail({ to: "a@example.com", subject: "s", text: "request 0" }),
    "m",
  );
  assert.deepEqual(partsOf(raw), [["text/plain", "request 0"]]);
});

Deno.test("compose: a body prepared ahead is the one its emails get, composed once", async () => {
  const compose = messageComposer(SENDER);
  compose.prepare(CONTENT.text, CONTENT.html);
  compose.prepare(CONTENT.text, CONTENT.html);
  assert.equal(compose.bodiesComposed, 1);
  const [a, b] = await Promise.all([
    compose(prepareEmail({ to: "alice@example.com", ...CONTENT }), "m-a@example.com"),
    compose(prepareEmail({ to: "bob@example.com", ...CONTENT }), "m-b@example.com"),
  ]);
  assert.equal(compose.bodiesComposed, 1);
  // The same multipart body, boundary and all (a body composed anew has a boundary of its own).
  assert.equal(bodyOf(a.raw), bodyOf(b.raw));
  assert.equal(
    bodyWithoutBoundary(a.raw),
    bodyWithoutBoundary(
      await nodemailerAlone({ to: "alice@example.com", ...CONTENT }, "m-a@example.com"),
    ),
  );
  // Once used, it is an ordinary cached body: preparing it again composes nothing.
  compose.prepare(CONTENT.text, CONTENT.html);
  assert.equal(compose.bodiesComposed, 1);
});

Deno.test("compose: at most 8 bodies wait ahead; one left waiting makes room once 8 later ones were used", async () => {
  const compose = messageComposer(SENDER);
  const send = (text: string) =>
    compose(prepareEmail({ to: "a@example.com", subject: "s", text }), "m").then(({ raw }) => {
      assert.deepEqual(partsOf(raw), [["text/plain", text]]);
    });
  // A burst: 8 are composed ahead, the others when they are sent, each once.
  for (let i = 0; i < 12; i++) compose.prepare(`burst ${i}`, undefined);
  assert.equal(compose.bodiesComposed, 8);
  for (let i = 0; i < 12; i++) await send(`burst ${i}`);
  assert.equal(compose.bodiesComposed, 12);

  // "stale" is prepared and never sent (another instance sent its emails).
  compose.prepare("stale", undefined);
  for (let i = 0; i < 7; i++) compose.prepare(`next ${i}`, undefined);
  assert.equal(compose.bodiesComposed, 20);
  for (let i = 0; i < 7; i++) await send(`next ${i}`);
  for (let i = 7; i < 14; i++) compose.prepare(`next ${i}`, undefined);
  await send("next 7");
  compose.prepare("next 14", undefined);
  assert.equal(compose.bodiesComposed, 28);
  // Full again, but 8 bodies prepared after "stale" were used since: it gives way.
  compose.prepare("next 15", undefined);
  assert.equal(compose.bodiesComposed, 29);
  await send("next 15");
  assert.equal(compose.bodiesComposed, 29);
  // Sent after all, it is composed again, correctly.
  await send("stale");
  assert.equal(compose.bodiesComposed, 30);
});

Deno.test("compose: a prepared body that is forgotten frees its place and is composed again if sent", async () => {
  const compose = messageComposer(SENDER);
  const forgets = Array.from({ length: 8 }, (_, i) => compose.prepare(`gone ${i}`, undefined));
  assert.equal(compose.bodiesComposed, 8);
  // Full: nothing more is prepared until places are free.
  compose.prepare("waiting", undefined);
  assert.equal(compose.bodiesComposed, 8);
  for (const forget of forgets) forget();
  for (let i = 0; i < 8; i++) compose.prepare(`next ${i}`, undefined);
  assert.equal(compose.bodiesComposed, 16);
  const { raw } = await compose(
    prepareEmail({ to: "a@example.com", subject: "s", text: "gone 0" }),
    "m",
  );
  assert.deepEqual(partsOf(raw), [["text/plain", "gone 0"]]);
  assert.equal(compose.bodiesComposed, 17);
  // Forgetting a body already used changes nothing.
  const used = compose.prepare("next 0", undefined);
  await compose(prepareEmail({ to: "a@example.com", subject: "s", text: "next 0" }), "m");
  used();
  await compose(prepareEmail({ to: "b@example.com", subject: "s", text: "next 0" }), "m");
  assert.equal(compose.bodiesComposed, 17);
});

/** The head as one `MimeNode` for the whole email writes it (how the composer built it before). */
function headOfOneNode(sender: string, email: OutgoingEmail, messageId: string, date: Date) {
  const prepared = prepareEmail(email);
  const head = new MimeNode();
  head.date = date;
  head.addHeader(prepared.headers.map(([key, value]) => ({ key, value })));
  head.setHeader("From", sender);
  head.setHeader("To", prepared.to);
  if (prepared.inReplyTo !== undefined) {
    head.setHeader("In-Reply-To", `<${prepared.inReplyTo}>`);
    head.setHeader("References", `<${prepared.inReplyTo}>`);
  }
  head.setHeader("Subject", prepared.subject);
  head.setHeader("Message-ID", `<${messageId}>`);
  return head.buildHeaders();
}

Deno.test("compose: each head is byte for byte the one a single MimeNode writes, also from kept lines", async () => {
  const senders = [SENDER, "noreply@example.com", `"Ops, Teleport" <ops@example.com>`];
  const emails: OutgoingEmail[] = [
    { to: "alice@example.com", ...CONTENT },
    { to: "bob@example.com", ...CONTENT, inReplyTo: "thread-1@example.com" },
    { to: "carol@bücher.example", subject: "x".repeat(200), text: "t" },
    {
      to: "dave@example.com",
      subject: `${"Zugriffsanfrage für ünïcode ".repeat(6)}✅`,
      text: "t",
      headers: { "X-Teleport-Request-Id": "0b3a", "X-Note": "Grüße, ünïcode ✅" },
    },
  ];
  for (const sender of senders) {
    const compose = messageComposer(sender);
    // Twice each: the second time every line but Message-ID and Date comes from what is kept.
    for (const round of [1, 2]) {
      for (const [i, email] of emails.entries()) {
        const messageId = `m-${round}-${i}@example.com`;
        const { raw } = await compose(prepareEmail(email), messageId);
        const ours = raw.slice(0, raw.indexOf("\r\nContent-"));
        const date = /^Date: (.+)$/m.exec(ours)![1]!;
        const expected = headOfOneNode(sender, email, messageId, new Date(date));
        assert.equal(ours, expected, `${sender}, email ${i}, round ${round}`);
      }
    }
  }
});

Deno.test("compose: a body written without streams is byte for byte what Nodemailer's build() writes", async () => {
  const long = "A line of the reason that is long enough to need a soft line break here ".repeat(3);
  const texts = [
    "plain ASCII, short",
    "",
    `${long}\nend`,
    "Grüße ✅ and ünïcode\r\nline two\n",
    "全角の日本語だけのテキスト。".repeat(20),
    "trailing spaces   \nand a tab\t\nlone \r CR\n.\n.. dots\nno final line end",
    "x\n",
    "y\r",
    `${"word ".repeat(13106)}ü ${"z".repeat(70)}   `, // past the encoders' 64 KiB slices
  ];
  const htmls = [undefined, "<p>ASCII</p>", `<p>${"ü".repeat(500)}</p>`, "<p>漢字</p>".repeat(40)];
  const withoutRandom = (message: string) => message.replace(/^(Date|Message-ID): .*\r\n/gm, "");
  const viaStreams = (mail: ConstructorParameters<typeof MailComposer>[0]) =>
    new Promise<string>((resolve, reject) => {
      new MailComposer(mail).compile().build((
        e,
        b,
      ) => (e ? reject(e) : resolve(b.toString("utf8"))));
    });
  let compared = 0;
  for (const text of texts) {
    for (const html of htmls) {
      const mail = { text, ...(html === undefined ? {} : { html }), baseBoundary: "fixed" };
      const ours = writeMessage(new MailComposer(mail).compile() as never);
      assert.ok(ours !== undefined, "strings are written here");
      assert.equal(
        withoutRandom(ours),
        withoutRandom(await viaStreams(mail)),
        JSON.stringify(mail).slice(0, 80),
      );
      compared++;
    }
  }
  assert.equal(compared, texts.length * htmls.length);
  // Anything but strings (here a buffer) is left to Nodemailer's streams.
  assert.equal(
    writeMessage(new MailComposer({ text: Buffer.from("b") }).compile() as never),
    undefined,
  );
});
