/**
 * Raw messages handed to Nodemailer's pool below `sendMail`
 * (`_smtp_pool_handover.ts`): the server gets what `sendMail` would have
 * sent, byte for byte, envelope included; a stop ends the send; a try whose
 * reused connection breaks before the message goes on another connection,
 * once. On the wire of the tests' SMTP server (smtp-server) and a scripted one.
 */
import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import { poolHandover } from "./_smtp_pool_handover.ts";
import { smtpTransportOptions } from "./smtp.ts";
import type { SmtpConfig } from "../config/types.ts";
import { startSmtpServer } from "../../tests/smtp_server.ts";
import { scriptedSmtpServer } from "../../tests/scripted_smtp.ts";
import { eventually } from "../../tests/harness.ts";

const SENDER = "Teleport Access <noreply@example.com>";

/** `promise`, or a failure after `ms`: a send that never settles fails the test instead of hanging it. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function transport(port: number) {
  const cfg: SmtpConfig = { kind: "smtp", host: "127.0.0.1", port, starttlsPolicy: "disabled" };
  return nodemailer.createTransport(smtpTransportOptions(cfg, []));
}

/** A raw message with what the data stream must escape: a line that starts with a dot, a bare LF. */
const raw = (n: number) =>
  [
    `From: ${SENDER}`,
    `To: user@jõgeva.ee`,
    `Subject: =?UTF-8?Q?caf=C3=A9?= ${n}`,
    `Message-ID: <m${n}@example.com>`,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    "café ✅",
    ".a line that starts with a dot",
    "bare\nLF",
    "",
  ].join("\r\n");

Deno.test("smtp: a message handed to the pool reaches the server as sendMail sends it, envelope included", async () => {
  const server = await startSmtpServer({});
  const mailer = transport(server.port);
  try {
    const handover = poolHandover(mailer);
    assert.ok(handover, "the Nodemailer pool's send that the extension calls exists");
    const envelope = { from: SENDER, to: ["user@jõgeva.ee", "Bob <bob@example.com>"] };
    await mailer.sendMail({ envelope, raw: raw(1), messageId: "<m1@example.com>" });
    await handover(envelope, raw(1), "<m1@example.com>", undefined);
    // A message still to come (a transaction opened ahead) is the same once it is there.
    await handover(envelope, Promise.resolve(raw(1)), "", undefined);
    const [bySendMail, handedOver, later] = await server.waitFor(3);
    assert.ok(bySendMail && handedOver && later);
    // The display names left out, as sendMail does.
    assert.equal(bySendMail.envelope.from, "noreply@example.com");
    assert.equal(bySendMail.envelope.to[1], "bob@example.com");
    // The dot was stuffed (and taken off by the server), the bare LF made a CRLF.
    assert.match(bySendMail.raw, /\r\n\.a line that starts with a dot\r\nbare\r\nLF\r\n/);
    for (const message of [handedOver, later]) {
      assert.deepEqual(message.envelope, bySendMail.envelope);
      assert.equal(message.raw, bySendMail.raw);
    }
  } finally {
    mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a message handed to the pool has sendMail's envelope commands on the wire", async () => {
  const server = scriptedSmtpServer();
  const mailer = transport(server.port);
  try {
    const envelope = { from: SENDER, to: ["user@jõgeva.ee"] };
    const envelopeCommands = () =>
      server.reads.flat().filter((l) => /^(MAIL FROM|RCPT TO)/.test(l)).splice(0);
    await mailer.sendMail({ envelope, raw: raw(1), messageId: "<m1@example.com>" });
    const bySendMail = envelopeCommands();
    server.reads.length = 0;
    await poolHandover(mailer)!(envelope, raw(1), "<m1@example.com>", undefined);
    // The internationalised domain as punycode (the local part is ASCII).
    assert.deepEqual(bySendMail, [
      "MAIL FROM:<noreply@example.com>",
      "RCPT TO:<user@xn--jgeva-dua.ee>",
    ]);
    assert.deepEqual(envelopeCommands(), bySendMail);
  } finally {
    mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a message handed to the pool stops when its signal does", async () => {
  // The server holds its answer to the first message's "." far longer than the stop comes.
  const server = scriptedSmtpServer({ delays: { ".": 10_000 } });
  const mailer = transport(server.port);
  try {
    const handover = poolHandover(mailer)!;
    const controller = new AbortController();
    const sending = handover(
      { from: SENDER, to: ["a@example.com"] },
      raw(1),
      "",
      controller.signal,
    );
    await eventually(() => server.reads.flat().includes("DATA"), 5_000, "DATA");
    controller.abort(new Error("shutting down"));
    const reason = (err: Error) =>
      err.name === "AbortError" && /shutting down/.test(String(err.cause));
    await assert.rejects(sending, reason);
  } finally {
    mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a handed-over message whose reused connection the server closes before it goes on another, once", async () => {
  // The 2nd RCPT is the second message's, on the connection that sent the first: the server
  // answers it and hangs up before DATA, as an idle cut or a per-connection limit would.
  const server = scriptedSmtpServer({ hangUpAfter: { verb: "RCPT", nth: 2 } });
  const mailer = transport(server.port);
  try {
    const handover = poolHandover(mailer)!;
    await handover({ from: SENDER, to: ["a@example.com"] }, raw(1), "", undefined);
    const second = handover({ from: SENDER, to: ["b@example.com"] }, raw(2), "", undefined);
    await within(second, 5_000, "the second send");
    assert.equal(server.hangUps, 1);
    assert.equal(server.messages, 2);
    const commands = server.reads.flat();
    assert.equal(commands.filter((l) => l === "DATA").length, 2, JSON.stringify(commands));
    assert.equal(commands.filter((l) => /^RCPT TO:<b@/.test(l)).length, 2);
  } finally {
    mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a message whose send was stopped before the hand-over never reaches the pool", async () => {
  const server = scriptedSmtpServer();
  const mailer = transport(server.port);
  try {
    const handover = poolHandover(mailer)!;
    await handover({ from: SENDER, to: ["a@example.com"] }, raw(1), "", undefined);
    const stopped = AbortSignal.abort(new Error("shutting down"));
    await assert.rejects(
      handover({ from: SENDER, to: ["b@example.com"] }, raw(2), "", stopped),
      /shutting down/,
    );
    // The next message goes on the same connection: the stopped one started no transaction
    // there (which its stop would then have had to cut).
    await handover({ from: SENDER, to: ["c@example.com"] }, raw(3), "", undefined);
    const commands = server.reads.flat();
    assert.deepEqual(commands.filter((l) => /^(EHLO|MAIL FROM|RCPT TO)/.test(l)), [
      "EHLO [127.0.0.1]",
      "MAIL FROM:<noreply@example.com>",
      "RCPT TO:<a@example.com>",
      "MAIL FROM:<noreply@example.com>",
      "RCPT TO:<c@example.com>",
    ]);
  } finally {
    mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a transport that is not Nodemailer's pool gets no hand-over (the mailer then uses sendMail)", () => {
  const cfg: SmtpConfig = { kind: "smtp", host: "127.0.0.1", port: 25, starttlsPolicy: "disabled" };
  const single = nodemailer.createTransport({ ...smtpTransportOptions(cfg, []), pool: false });
  try {
    assert.equal(poolHandover(single), undefined);
  } finally {
    single.close();
  }
});
