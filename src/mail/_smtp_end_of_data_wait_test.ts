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

const encoder = new TextEncoder();
const TIMEOUTS = { connectionMs: 1_000, greetingMs: 1_000, socketMs: 300 };

/** An SMTP server that waits `delays[verb]` ms before answering a verb ("." for the message). */
function slowServer(delays: Record<string, number>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let messages = 0;
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      void (async () => {
        const reply = async (verb: string, text: string) => {
          const ms = delays[verb] ?? 0;
          if (ms > 0) await new Promise((r) => setTimeout(r, ms));
          await conn.write(encoder.encode(text + "\r\n"));
        };
        const decoder = new TextDecoder();
        let inData = false;
        let buffered = "";
        const buf = new Uint8Array(64 * 1024);
        try {
          await reply("GREETING", "220 slow ESMTP");
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            buffered += decoder.decode(buf.subarray(0, n), { stream: true });
            if (inData) {
              if (!buffered.includes("\r\n.\r\n")) continue;
              buffered = buffered.slice(buffered.indexOf("\r\n.\r\n") + 5);
              inData = false;
              messages++;
              await reply(".", "250 queued");
              continue;
            }
            const lines = buffered.split("\r\n");
            buffered = lines.pop() ?? "";
            for (const line of lines) {
              const verb = line.slice(0, 4).toUpperCase();
              if (verb === "EHLO") await reply(verb, "250-slow\r\n250 8BITMIME");
              else if (verb === "DATA") {
                inData = true;
                await reply(verb, "354 go on");
              } else if (verb === "QUIT") {
                await reply(verb, "221 bye");
                return;
              } else await reply(verb, "250 ok");
            }
          }
        } catch {
          // the client went away
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // already closed
          }
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get messages() {
      return messages;
    },
    close: async () => {
      listener.close();
      for (const conn of conns) conn.close();
      await serving;
    },
  };
}

function mailerFor(port: number) {
  return createSmtpMailer(
    { kind: "smtp", host: "127.0.0.1", port, starttlsPolicy: "disabled" },
    "noreply@example.com",
    { trustedCas: () => [], timeouts: TIMEOUTS },
  );
}

Deno.test("smtp: a server slow to accept the message (past the socket timeout) gets it once", async () => {
  assert.ok(END_OF_DATA_WAIT_PATCHED, "the Nodemailer methods the workaround wraps exist");
  const server = slowServer({ ".": 1_200 });
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
  const server = slowServer({ "RCPT": 1_200 });
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
