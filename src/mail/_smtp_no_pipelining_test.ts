/**
 * The SMTP mailer waits for each envelope reply before the next command,
 * even when the server advertises PIPELINING (see `_smtp_no_pipelining.ts`):
 * proven on the wire against a scripted server that records how the
 * commands arrive.
 */
import assert from "node:assert/strict";
import { createSmtpMailer } from "./smtp.ts";
import { PIPELINING_DISABLED } from "./_smtp_no_pipelining.ts";

const encoder = new TextEncoder();

/** A minimal SMTP server advertising PIPELINING; `reads` holds the command lines of each read. */
function scriptedServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reads: string[][] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      void (async () => {
        const reply = (text: string) => conn.write(encoder.encode(text + "\r\n"));
        await reply("220 scripted ESMTP");
        const decoder = new TextDecoder();
        let inData = false;
        let buffered = "";
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) break;
          buffered += decoder.decode(buf.subarray(0, n), { stream: true });
          if (inData) {
            if (!buffered.includes("\r\n.\r\n")) continue;
            buffered = buffered.slice(buffered.indexOf("\r\n.\r\n") + 5);
            inData = false;
            await reply("250 queued");
            continue;
          }
          const lines = buffered.split("\r\n");
          buffered = lines.pop() ?? "";
          reads.push(lines);
          for (const line of lines) {
            const verb = line.slice(0, 4).toUpperCase();
            if (verb === "EHLO") await reply("250-scripted\r\n250-PIPELINING\r\n250 8BITMIME");
            else if (verb === "DATA") {
              inData = true;
              await reply("354 go on");
            } else if (verb === "QUIT") {
              await reply("221 bye");
              conn.close();
              return;
            } else await reply("250 ok");
          }
        }
        try {
          conn.close();
        } catch {
          // already closed
        }
      })();
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    port,
    reads,
    close: async () => {
      listener.close();
      await serving;
    },
  };
}

Deno.test("smtp: envelope commands are not pipelined, so a server's split replies cannot stall", async () => {
  assert.ok(PIPELINING_DISABLED, "the Nodemailer method the workaround wraps exists");
  const server = scriptedServer();
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
