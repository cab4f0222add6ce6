/**
 * The SMTP mailer waits for each envelope reply before the next command,
 * even when the server advertises PIPELINING (see `_smtp_no_pipelining.ts`):
 * proven on the wire against a scripted server that records how the
 * commands arrive.
 */
import assert from "node:assert/strict";
import { createSmtpMailer } from "./smtp.ts";
import { PIPELINING_DISABLED } from "./_smtp_no_pipelining.ts";
import { scriptedSmtpServer } from "../../tests/scripted_smtp.ts";

Deno.test("smtp: envelope commands are not pipelined, so a server's split replies cannot stall", async () => {
  assert.ok(PIPELINING_DISABLED, "the Nodemailer method the workaround wraps exists");
  const server = scriptedSmtpServer({ pipelining: true });
  const mailer = createSmtpMailer(
    { kind: "smtp", host: "127.0.0.1", port: server.port, starttlsPolicy: "disabled" },
    "noreply@example.com",
    { trustedCas: () => [] },
  );
  try {
    for (let i = 0; i < 2; i++) {
      await mailer.send({
        to: "bob@example.com",
        subject: `s${i}`,
        text: "hello",
        html: "<p>hi</p>",
      });
    }
  } finally {
    await mailer.close();
    await server.close();
  }
  const envelopeReads = server.reads.filter((lines) =>
    lines.some((l) => /^(MAIL FROM|RCPT TO|DATA)/i.test(l))
  );
  // Each of MAIL FROM, RCPT TO and DATA came alone, after the reply to the one before.
  assert.ok(envelopeReads.length >= 6, JSON.stringify(server.reads));
  for (const lines of envelopeReads) {
    assert.equal(lines.length, 1, `one command per read, got ${JSON.stringify(lines)}`);
  }
});
