/**
 * The answer to the message's final "." is waited for longer than any other
 * reply (see `_smtp_end_of_data_wait.ts`): a server that takes its time to
 * accept the message gets it once, while silence elsewhere in the session
 * still times out at the socket timeout. Against a scripted server on
 * loopback (Postfix with a slow end-of-data check showed the duplicates).
 */
import assert from "node:assert/strict";
import { createSmtpMailer } from "./smtp.ts";
import { MailError } from "./mailer.ts";
import { END_OF_DATA_WAIT_PATCHED } from "./_smtp_end_of_data_wait.ts";
import { scriptedSmtpServer } from "../../tests/scripted_smtp.ts";

const TIMEOUTS = { connectionMs: 1_000, greetingMs: 1_000, socketMs: 300 };

function mailerFor(port: number) {
  return createSmtpMailer(
    { kind: "smtp", host: "127.0.0.1", port, starttlsPolicy: "disabled" },
    "noreply@example.com",
    { trustedCas: () => [], timeouts: TIMEOUTS },
  );
}

Deno.test("smtp: a server slow to accept the message (past the socket timeout) gets it once", async () => {
  assert.ok(END_OF_DATA_WAIT_PATCHED, "the Nodemailer methods the workaround wraps exist");
  const server = scriptedSmtpServer({ delays: { ".": 1_200 } });
  const mailer = mailerFor(server.port);
  try {
    const sent = await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
    assert.ok(sent.messageId);
    assert.equal(server.messages, 1);
    // The next message on the same pooled connection: the other replies are timed as before.
    await mailer.send({ to: "b@example.com", subject: "s", text: "t" });
    assert.equal(server.messages, 2);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: silence elsewhere in the session still times out at the socket timeout", async () => {
  const server = scriptedSmtpServer({ delays: { "RCPT": 1_200 } });
  const mailer = mailerFor(server.port);
  try {
    const err = await mailer.send({ to: "a@example.com", subject: "s", text: "t" }).then(
      () => assert.fail("sent"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MailError, String(err));
    assert.equal(err.transient, true);
    assert.match(err.message, /tim/i);
    assert.equal(server.messages, 0);
  } finally {
    await mailer.close();
    await server.close();
  }
});
