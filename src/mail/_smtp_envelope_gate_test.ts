/**
 * Transactions opened ahead (`openEnvelopes`, `_smtp_envelope_gate.ts`),
 * on the wire of a scripted server that records the commands it reads: the
 * envelope goes out at once and DATA waits for the email; an email that does
 * not come is reset (RSET) and the connection serves the next one. The same
 * against aiosmtpd is in `smtp_aiosmtpd_test.ts`.
 */
import assert from "node:assert/strict";
import { createSmtpMailer, type SmtpMailerDeps } from "./smtp.ts";
import { type MessageComposer, messageComposer } from "./compose.ts";
import { ENVELOPE_GATE_AVAILABLE } from "./_smtp_envelope_gate.ts";
import { type ScriptedSmtpOptions, scriptedSmtpServer } from "../../tests/scripted_smtp.ts";
import { eventually } from "../../tests/harness.ts";

function setup(
  options: ScriptedSmtpOptions = { pipelining: true },
  deps: SmtpMailerDeps = {},
) {
  const server = scriptedSmtpServer(options);
  // The mailer's composer, kept to count the bodies it composes.
  let composer: MessageComposer | undefined;
  const mailer = createSmtpMailer(
    { kind: "smtp", host: "127.0.0.1", port: server.port, starttlsPolicy: "disabled" },
    "noreply@example.com",
    {
      trustedCas: () => [],
      messageComposer: (sender) => composer = messageComposer(sender),
      ...deps,
    },
  );
  const commands = () => server.reads.flat();
  const count = (pattern: RegExp) => commands().filter((l) => pattern.test(l)).length;
  const composed = () => composer!.bodiesComposed;
  return { server, mailer, commands, count, composed };
}

const email = (to: string, subject: string) => ({ to, subject, text: "hello", html: "<p>hi</p>" });

Deno.test("smtp: an envelope opened ahead waits before DATA, and the email to its recipient goes on it", async () => {
  assert.ok(ENVELOPE_GATE_AVAILABLE, "the Nodemailer method the extension wraps exists");
  const { server, mailer, commands, count } = setup();
  try {
    mailer.openEnvelopes!(["bob@example.com", "carol@example.com"]);
    await eventually(() => count(/^RCPT TO:<(bob|carol)@example\.com>/) === 2, 5_000, "RCPT TO");
    assert.equal(count(/^DATA/), 0, JSON.stringify(commands()));
    await mailer.send(email("bob@example.com", "for bob"));
    await mailer.send(email("carol@example.com", "for carol"));
    assert.equal(server.messages, 2);
    // Each email went on its opened transaction: no second MAIL FROM, no reset.
    assert.equal(count(/^MAIL FROM/), 2, JSON.stringify(commands()));
    assert.equal(count(/^DATA/), 2);
    assert.equal(count(/^RSET/), 0);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: envelopes opened ahead whose emails do not come are reset; the connections send the next", async () => {
  const { server, mailer, commands, count } = setup();
  try {
    const release = mailer.openEnvelopes!(["bob@example.com", "carol@example.com"]);
    await eventually(() => count(/^RCPT TO/) === 2, 5_000, "RCPT TO");
    release();
    await eventually(() => count(/^RSET/) === 2, 5_000, "RSET");
    assert.equal(count(/^DATA/), 0, JSON.stringify(commands()));
    await mailer.send(email("bob@example.com", "later"));
    assert.equal(server.messages, 1);
    assert.equal(count(/^MAIL FROM/), 3);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: an envelope opened ahead that nobody releases is reset after OPEN_ENVELOPE_MS", async () => {
  const waitMs = 200;
  const { server, mailer, count } = setup(undefined, { openEnvelopeMs: waitMs });
  try {
    const opened = Date.now();
    mailer.openEnvelopes!(["bob@example.com"]);
    await eventually(() => count(/^RSET/) === 1, waitMs + 5_000, "RSET");
    assert.ok(Date.now() - opened >= waitMs - 50);
    assert.equal(count(/^DATA/), 0);
    await mailer.send(email("bob@example.com", "later"));
    assert.equal(server.messages, 1);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a busy mailer opens nothing ahead (a burst keeps its connections for ready emails)", async () => {
  const { server, mailer, count } = setup({ delays: { ".": 300 } });
  try {
    const sending = mailer.send(email("alice@example.com", "first"));
    const release = mailer.openEnvelopes!(["bob@example.com"]);
    await sending;
    // Opened ahead, bob's email would now go on that transaction; it gets one of its own.
    release();
    await mailer.send(email("bob@example.com", "second"));
    const rcpts = server.reads.flat().filter((l) => /^RCPT TO/.test(l));
    assert.deepEqual(rcpts, ["RCPT TO:<alice@example.com>", "RCPT TO:<bob@example.com>"]);
    assert.equal(count(/^RSET/), 0);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: an opened transaction whose reused connection the server closes still delivers its email, once", async () => {
  // The 2nd RCPT is the opened one, on the connection that sent the first email: the server
  // answers it and hangs up, as an idle cut or a per-connection limit would.
  const { server, mailer, count } = setup({ hangUpAfter: { verb: "RCPT", nth: 2 } });
  try {
    await mailer.send(email("alice@example.com", "first"));
    mailer.openEnvelopes!(["bob@example.com"]);
    await eventually(() => server.hangUps === 1, 5_000, "the hang-up");
    await mailer.send(email("bob@example.com", "second"));
    assert.equal(server.messages, 2);
    assert.equal(count(/^DATA/), 2);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: stopping the send of an opened transaction's email stops it, as any send", async () => {
  // The server holds its answer to the message's "." far longer than the stop comes.
  const { server, mailer, count } = setup({ delays: { ".": 10_000 } });
  try {
    mailer.openEnvelopes!(["bob@example.com"]);
    await eventually(() => count(/^RCPT TO/) === 1, 5_000, "RCPT TO");
    const controller = new AbortController();
    const sending = mailer.send(email("bob@example.com", "stopped"), controller.signal);
    await eventually(() => count(/^DATA/) === 1, 5_000, "DATA");
    controller.abort(new Error("shutting down"));
    await assert.rejects(sending, /shutting down/);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a body prepared just after envelopes are opened is composed soon after, not at once, and its emails use it", async () => {
  const { server, mailer, count, composed } = setup();
  try {
    // Without transactions opened, a prepared body is composed at once.
    mailer.prepare!({ text: "ready", html: "<p>ready</p>" });
    assert.equal(composed(), 1);
    mailer.openEnvelopes!(["bob@example.com", "carol@example.com"]);
    const { text, html } = email("bob@example.com", "");
    mailer.prepare!({ text, html });
    // Not yet: the transactions' commands go first.
    assert.equal(composed(), 1);
    await eventually(() => composed() === 2, 5_000, "the body composed");
    await mailer.send(email("bob@example.com", "for bob"));
    await mailer.send(email("carol@example.com", "for carol"));
    // The emails used the body composed ahead: none composed again.
    assert.equal(composed(), 2);
    assert.equal(server.messages, 2);
    assert.equal(count(/^MAIL FROM/), 2);
    assert.equal(count(/^RSET/), 0);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a body prepared after envelopes are opened and forgotten at once is not composed", async () => {
  const { server, mailer, count, composed } = setup();
  try {
    const release = mailer.openEnvelopes!(["bob@example.com"]);
    const forget = mailer.prepare!({ text: "never", html: "<p>never</p>" });
    forget();
    release();
    await eventually(() => count(/^RSET/) === 1, 5_000, "RSET");
    assert.equal(composed(), 0);
  } finally {
    await mailer.close();
    await server.close();
  }
});
