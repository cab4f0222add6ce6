import assert from "node:assert/strict";
import net from "node:net";
import nodemailer from "nodemailer";
import type { SmtpConfig } from "../config/types.ts";
import { Secret } from "../lib/secret.ts";
import { issueCert, makeCa, type Pem } from "../../tests/pki.ts";
import { type FakeSmtpOptions, startSmtpServer } from "../../tests/smtp_server.ts";
import { rejection } from "../../tests/assert.ts";
import { type Mailer, MailError } from "./mailer.ts";
import {
  createSmtpMailer,
  IMPLICIT_TLS_PORT,
  MAX_CONNECTIONS,
  type SmtpMailerDeps,
  smtpMailError,
  smtpTransportOptions,
} from "./smtp.ts";

const SENDER = "Teleport Access <noreply@example.com>";
const USER = "teleport";
const PASSWORD = "correct horse battery staple";
const FAST_TIMEOUTS = { connectionMs: 1_000, greetingMs: 300, socketMs: 1_000 };

const pki = (async () => {
  const ca = await makeCa("Test SMTP CA");
  const otherCa = await makeCa("Some Other CA");
  const server = await issueCert(ca, {
    commonName: "localhost",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    usage: "server",
  });
  const wrongName = await issueCert(ca, {
    commonName: "mail.example.net",
    dnsNames: ["mail.example.net"],
    usage: "server",
  });
  return { ca, otherCa, server, wrongName };
})();

function smtpConfig(port: number, overrides: Partial<SmtpConfig> = {}): SmtpConfig {
  return {
    kind: "smtp",
    host: "127.0.0.1",
    port,
    starttlsPolicy: "mandatory",
    ...overrides,
  };
}

/** Starts a fake server and a mailer for it; disposes both. */
async function withSmtp(
  serverOpts: FakeSmtpOptions,
  cfg: (port: number, ca: Pem) => SmtpConfig,
  run: (
    mailer: Mailer,
    server: Awaited<ReturnType<typeof startSmtpServer>>,
  ) => Promise<void>,
  deps: SmtpMailerDeps = {},
): Promise<void> {
  const { ca } = await pki;
  const server = await startSmtpServer(serverOpts);
  const mailer = createSmtpMailer(cfg(server.port, ca), SENDER, {
    trustedCas: () => [],
    ...deps,
  });
  try {
    await run(mailer, server);
  } finally {
    await mailer.close();
    await server.close();
  }
}

/** The `MailError` a send or health check rejects with. */
const mailError = (promise: Promise<unknown>) => rejection(promise, MailError);

Deno.test("smtp: STARTTLS + AUTH delivers text and html with the threading headers", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert, auth: { username: USER, password: PASSWORD } },
    (port, ca) => smtpConfig(port, { username: USER, password: new Secret(PASSWORD), ca: ca.cert }),
    async (mailer, server) => {
      const first = await mailer.send({
        to: "alice@example.com",
        subject: "teleport Role Request 1234",
        text: "You have a new Role Request: ✅",
        html: "<p>You have a new <b>Role Request</b>: ✅</p>",
      });
      const reply = await mailer.send({
        to: "alice@example.com",
        subject: "teleport Role Request 1234",
        text: "bob reviewed the request",
        inReplyTo: `<${first.messageId}>`,
      });
      const [m1, m2] = await server.waitFor(2);
      assert.ok(m1 && m2);

      assert.equal(m1.secure, true);
      assert.equal(m1.user, USER);
      assert.deepEqual(m1.envelope, { from: "noreply@example.com", to: ["alice@example.com"] });
      assert.equal(m1.header("From"), "Teleport Access <noreply@example.com>");
      assert.equal(m1.header("To"), "alice@example.com");
      assert.equal(m1.header("Subject"), "teleport Role Request 1234");
      assert.equal(m1.header("Auto-Submitted"), "auto-generated");
      assert.equal(m1.header("Message-ID"), `<${first.messageId}>`);
      assert.match(first.messageId, /^[0-9a-f]{32}\.[0-9a-z]+@example\.com$/);
      assert.equal(m1.header("In-Reply-To"), undefined);
      assert.equal(m1.header("References"), undefined);
      assert.match(m1.header("Content-Type") ?? "", /^multipart\/alternative;/);
      assert.equal(m1.text, "You have a new Role Request: ✅");
      assert.equal(m1.html, "<p>You have a new <b>Role Request</b>: ✅</p>");

      assert.equal(m2.header("Message-ID"), `<${reply.messageId}>`);
      assert.notEqual(reply.messageId, first.messageId);
      assert.equal(m2.header("In-Reply-To"), `<${first.messageId}>`);
      assert.equal(m2.header("References"), `<${first.messageId}>`);
      assert.equal(m2.header("Auto-Submitted"), "auto-generated");
      assert.match(m2.header("Content-Type") ?? "", /^text\/plain/);
      assert.equal(m2.text, "bob reviewed the request");
    },
  );
});

Deno.test("smtp: the tries of one email share its Message-ID, other emails get their own", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      const email = { to: "a@example.com", subject: "s", text: "t" };
      const first = await mailer.send(email);
      const again = await mailer.send(email); // as the retry of its request tries it again
      const other = await mailer.send({ ...email });
      assert.equal(again.messageId, first.messageId);
      assert.notEqual(other.messageId, first.messageId);
      const ids = (await server.waitFor(3)).map((m) => m.headerAll("Message-ID"));
      assert.deepEqual(ids, [
        [`<${first.messageId}>`],
        [`<${first.messageId}>`],
        [`<${other.messageId}>`],
      ]);
    },
  );
});

Deno.test("smtp: reply ids get exactly one pair of angle brackets", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      for (const id of ["a1@example.com", "<a1@example.com>", "<<a1@example.com>>"]) {
        await mailer.send({ to: "a@example.com", subject: "s", text: "t", inReplyTo: id });
      }
      for (const m of await server.waitFor(3)) {
        assert.deepEqual(m.headerAll("In-Reply-To"), ["<a1@example.com>"]);
        assert.deepEqual(m.headerAll("References"), ["<a1@example.com>"]);
      }
    },
  );
});

Deno.test("smtp: CR/LF in the subject or a header value never makes a header", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      await mailer.send({
        to: "a@example.com",
        subject: "Role Request\r\nBcc: x@evil.example",
        text: "body",
        headers: { "X-Request-Reason": "please\r\nBcc: x@evil.example\nX-Evil: 1" },
        inReplyTo: "id@example.com>\r\nBcc: x@evil.example",
      });
      const [m] = await server.waitFor(1);
      assert.ok(m);
      assert.deepEqual(m.envelope.to, ["a@example.com"]);
      assert.deepEqual(m.headerAll("Bcc"), []);
      assert.deepEqual(m.headerAll("X-Evil"), []);
      assert.doesNotMatch(m.raw, /^Bcc:/im);
      assert.equal(m.header("Subject"), "Role Request Bcc: x@evil.example");
      assert.equal(m.header("X-Request-Reason"), "please Bcc: x@evil.example X-Evil: 1");
      assert.equal(m.header("In-Reply-To"), "<id@example.comBcc:x@evil.example>");
    },
  );
});

Deno.test("smtp: mandatory STARTTLS fails when the server does not offer it, as a mailer down (transient)", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert, starttls: false },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(err.transient, true);
      assert.equal(err.code, "ETLS");
      assert.match(err.message, /STARTTLS/);
      assert.match(err.response ?? "", /^5\d\d /);
      assert.equal(server.messages.length, 0);
      await mailError(mailer.checkHealth());
    },
  );
});

Deno.test("smtp: opportunistic STARTTLS sends in plaintext when not offered", async () => {
  await withSmtp(
    {},
    (port) => smtpConfig(port, { starttlsPolicy: "opportunistic" }),
    async (mailer, server) => {
      await mailer.checkHealth();
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      const [m] = await server.waitFor(1);
      assert.equal(m?.secure, false);
    },
  );
});

Deno.test("smtp: opportunistic STARTTLS upgrades when offered", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { starttlsPolicy: "opportunistic", ca: ca.cert }),
    async (mailer, server) => {
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      const [m] = await server.waitFor(1);
      assert.equal(m?.secure, true);
    },
  );
});

Deno.test("smtp: opportunistic STARTTLS still verifies the certificate", async () => {
  const { server: cert, otherCa } = await pki;
  await withSmtp(
    { tls: cert },
    (port) => smtpConfig(port, { starttlsPolicy: "opportunistic", ca: otherCa.cert }),
    async (mailer, server) => {
      const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.match(err.message, /certificate verification failed/);
      assert.equal(server.messages.length, 0);
    },
  );
});

Deno.test("smtp: disabled STARTTLS never upgrades, even when offered", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { starttlsPolicy: "disabled", ca: ca.cert }),
    async (mailer, server) => {
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      const [m] = await server.waitFor(1);
      assert.equal(m?.secure, false);
    },
  );
});

Deno.test("smtp: port 465 means implicit TLS, whatever the STARTTLS policy", () => {
  for (const policy of ["mandatory", "opportunistic", "disabled"] as const) {
    const implicit = smtpTransportOptions(
      smtpConfig(IMPLICIT_TLS_PORT, { starttlsPolicy: policy }),
      [],
    );
    assert.equal(implicit.secure, true);
    assert.equal(implicit.requireTLS, undefined);
    assert.equal(implicit.ignoreTLS, undefined);
    assert.equal(implicit.opportunisticTLS, undefined);
  }
  const submission = smtpTransportOptions(smtpConfig(587), []);
  assert.equal(submission.secure, false);
  assert.equal(submission.requireTLS, true);
  assert.equal(
    smtpTransportOptions(smtpConfig(25, { starttlsPolicy: "disabled" }), []).ignoreTLS,
    true,
  );
});

Deno.test("smtp: implicit TLS against a real server on port 465", async (t) => {
  const { ca } = await pki;
  // A random loopback address of 127/8 keeps port 465 free of clashes between runs.
  const ip = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${
    2 + Math.floor(Math.random() * 250)
  }`;
  const cert = await issueCert(ca, { commonName: ip, ipAddresses: [ip], usage: "server" });
  let server;
  try {
    server = await startSmtpServer({ host: ip, port: IMPLICIT_TLS_PORT, tls: cert, secure: true });
  } catch (err) {
    // Binding a port below 1024 needs privileges a developer machine may not grant.
    await t.step({ name: `skipped: cannot listen on ${ip}:465 (${err})`, ignore: true, fn() {} });
    return;
  }
  const mailer = createSmtpMailer(
    { kind: "smtp", host: ip, port: IMPLICIT_TLS_PORT, starttlsPolicy: "mandatory", ca: ca.cert },
    SENDER,
    { trustedCas: () => [] },
  );
  try {
    await mailer.checkHealth();
    await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
    const [m] = await server.waitFor(1);
    assert.equal(m?.secure, true);
  } finally {
    await mailer.close();
    await server.close();
  }
});

Deno.test("smtp: a certificate from an untrusted CA fails verification, as a mailer down (transient)", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port) => smtpConfig(port),
    async (mailer, server) => {
      const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(err.transient, true);
      assert.equal(err.code, "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
      assert.match(err.message, /certificate verification failed/);
      assert.equal(server.messages.length, 0);
      const health = await mailError(mailer.checkHealth());
      assert.match(health.message, /^SMTP health check via "127\.0\.0\.1:\d+" failed: certificate/);
    },
  );
});

Deno.test("smtp: a certificate for another name fails verification, as a mailer down (transient)", async () => {
  const { wrongName } = await pki;
  await withSmtp(
    { tls: wrongName },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer) => {
      const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(err.transient, true);
      assert.equal(err.code, "ERR_TLS_CERT_ALTNAME_INVALID");
    },
  );
});

Deno.test("smtp: implicit TLS with an untrusted CA fails verification", async () => {
  const { server: cert } = await pki;
  const server = await startSmtpServer({ tls: cert, secure: true });
  // The options of port 465 pointed at the fake's random port: the TLS path is the real one.
  const options = smtpTransportOptions(smtpConfig(IMPLICIT_TLS_PORT), []);
  assert.equal(options.secure, true);
  const transporter = nodemailer.createTransport({ ...options, port: server.port });
  try {
    await assert.rejects(transporter.verify(), { originalCode: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  } finally {
    transporter.close();
    await server.close();
  }
});

Deno.test("smtp: failed AUTH is a mailer down (transient: a rotated password is fixed, no recipient given up on), keeps the server's answer, hides the password", async () => {
  const { server: cert } = await pki;
  const wrong = "Wr0ng-S3cret-Passw0rd";
  await withSmtp(
    { tls: cert, auth: { username: USER, password: PASSWORD } },
    (port, ca) => smtpConfig(port, { username: USER, password: new Secret(wrong), ca: ca.cert }),
    async (mailer, server) => {
      for (
        const err of [
          await mailError(mailer.checkHealth()),
          await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" })),
        ]
      ) {
        assert.equal(err.transient, true);
        assert.equal(err.code, "EAUTH");
        assert.equal(err.status, 535);
        assert.equal(err.response, "535 5.7.8 Authentication credentials invalid");
        assert.match(err.message, /Authentication credentials invalid/);
        const everything = `${err.message} ${err.response} ${JSON.stringify(err)} ${
          Deno.inspect(err)
        }`;
        assert.ok(!everything.includes(wrong), everything);
      }
      assert.deepEqual(server.authFailures, [USER, USER]);
    },
  );
});

Deno.test("smtp: 421 is transient, 550 for a recipient is permanent and names it, a refusal to relay is transient", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    {
      tls: cert,
      failMailFrom: { count: 1, reply: { code: 421, message: "4.7.0 Try again later" } },
      rejectRecipients: {
        "gone@example.com": { code: 550, message: "5.1.1 No such user" },
        "far@example.org": { code: 554, message: "5.7.1 <far@example.org>: Relay access denied" },
      },
    },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      const soft = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(soft.transient, true);
      assert.equal(soft.status, 421);
      assert.equal(soft.response, "421 4.7.0 Try again later");

      const hard = await mailError(
        mailer.send({ to: "gone@example.com", subject: "s", text: "t" }),
      );
      assert.equal(hard.transient, false);
      assert.equal(hard.status, 550);
      assert.equal(hard.code, "EENVELOPE");
      assert.equal(hard.recipient, "gone@example.com");
      assert.equal(hard.response, "550 5.1.1 No such user");
      assert.match(hard.message, /"gone@example\.com"/);

      // A refusal to relay is the session's (its login or address lost the right), not the email's.
      const relay = await mailError(
        mailer.send({ to: "far@example.org", subject: "s", text: "t" }),
      );
      assert.equal(relay.transient, true);
      assert.equal(relay.status, 554);

      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      assert.equal((await server.waitFor(1)).length, 1);
    },
  );
});

Deno.test("smtp: a refusal to relay at RCPT TO is a session failure, other refusals of a recipient are not", () => {
  const rcpt = (response: string) =>
    smtpMailError(
      {
        message: "Can't send mail - all recipients were rejected",
        code: "EENVELOPE",
        command: "RCPT TO",
        responseCode: Number(response.slice(0, 3)),
        response,
      },
      { what: "send", server: "relay.example.com:587", recipient: "a@example.com" },
    ).transient;
  for (
    const reply of [
      "554 5.7.1 <far@example.org>: Relay access denied",
      "550 5.7.1 Relaying denied",
      "550 relay not permitted",
      "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
    ]
  ) assert.equal(rcpt(reply), true, reply);
  for (
    const reply of [
      "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
      // "relay" in an address or a field is no refusal to relay.
      "554 5.7.1 <relay@example.com>: Recipient address rejected: Access denied",
      "554 5.7.1 <ops@smtp-relay.example.com>: Recipient address rejected: Access denied",
      "550 5.1.1 User unknown; relay=mx.example.com; delivery not allowed",
      "550 5.1.1 <gone@example.com>: User unknown in relay recipient table",
    ]
  ) assert.equal(rcpt(reply), false, reply);
});

Deno.test("smtp: 4xx after DATA is transient, 5xx after DATA permanent", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert, failData: { count: 1, reply: { code: 452, message: "4.3.1 Mailbox full" } } },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer) => {
      const soft = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(soft.transient, true);
      assert.equal(soft.status, 452);
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
    },
  );
  await withSmtp(
    { tls: cert, failData: { count: 1, reply: { code: 554, message: "5.7.1 Spam" } } },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer) => {
      const hard = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(hard.transient, false);
      assert.equal(hard.response, "554 5.7.1 Spam");
    },
  );
});

Deno.test("smtp: an unauthenticated relay works without a username", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      await mailer.checkHealth();
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      const [m] = await server.waitFor(1);
      assert.equal(m?.user, undefined);
      assert.equal(m?.secure, true);
    },
  );
});

Deno.test("smtp: concurrent sends share a bounded pool of connections", async () => {
  const { server: cert } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { ca: ca.cert }),
    async (mailer, server) => {
      const sends = Array.from(
        { length: 12 },
        (_, i) => mailer.send({ to: `user${i}@example.com`, subject: `s${i}`, text: "t" }),
      );
      const ids = (await Promise.all(sends)).map((s) => s.messageId);
      assert.equal(new Set(ids).size, 12);
      assert.equal((await server.waitFor(12)).length, 12);
      assert.ok(server.connectionCount <= MAX_CONNECTIONS, `${server.connectionCount} connections`);
    },
  );
});

Deno.test("smtp: a refused connection is transient", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const mailer = createSmtpMailer(smtpConfig(port), SENDER, { trustedCas: () => [] });
  try {
    const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
    assert.equal(err.transient, true);
    assert.equal(err.code, "ECONNREFUSED");
    const health = await mailError(mailer.checkHealth());
    assert.equal(health.transient, true);
  } finally {
    await mailer.close();
  }
});

Deno.test("smtp: a refused connection to a host with two addresses says why", async () => {
  // "localhost" is ::1 and 127.0.0.1: both connects fail, as one AggregateError without a message.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const mailer = createSmtpMailer(smtpConfig(port, { host: "localhost" }), SENDER, {
    trustedCas: () => [],
  });
  try {
    const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
    assert.equal(err.transient, true);
    assert.match(err.message, new RegExp(`failed: .*ECONNREFUSED .*:${port}`));
  } finally {
    await mailer.close();
  }
});

Deno.test("smtp: a server that never greets times out, transiently", async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const port = (silent.address() as net.AddressInfo).port;
  const mailer = createSmtpMailer(smtpConfig(port), SENDER, {
    trustedCas: () => [],
    timeouts: FAST_TIMEOUTS,
  });
  try {
    const err = await mailError(mailer.checkHealth());
    assert.equal(err.transient, true);
    assert.equal(err.code, "ETIMEDOUT");
    assert.match(err.message, /Greeting never received/);
  } finally {
    await mailer.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

Deno.test("smtp: an invalid recipient is refused before connecting", async () => {
  const mailer = createSmtpMailer(smtpConfig(1), SENDER, { trustedCas: () => [] });
  try {
    const err = await mailError(
      mailer.send({ to: "a@example.com\r\nBcc: x@evil.example", subject: "s", text: "t" }),
    );
    assert.equal(err.transient, false);
    assert.equal(err.code, "EMESSAGE");
  } finally {
    await mailer.close();
  }
});

Deno.test("smtp: an aborted send rejects with the signal's reason", async () => {
  const mailer = createSmtpMailer(smtpConfig(1), SENDER, { trustedCas: () => [] });
  try {
    const controller = new AbortController();
    const reason = new Error("shutting down");
    controller.abort(reason);
    await assert.rejects(
      mailer.send({ to: "a@example.com", subject: "s", text: "t" }, controller.signal),
      (err) => err === reason,
    );
    await assert.rejects(mailer.checkHealth(controller.signal), (err) => err === reason);
  } finally {
    await mailer.close();
  }
});

Deno.test("smtp: the configured CA is trusted in addition to the system roots", async () => {
  const { ca, otherCa, server: cert } = await pki;
  const server = await startSmtpServer({ tls: cert });
  const attempt = async (systemRoots: Pem[], configured: Pem | undefined) => {
    const mailer = createSmtpMailer(
      smtpConfig(server.port, configured ? { ca: configured.cert } : {}),
      SENDER,
      { trustedCas: () => systemRoots.map((p) => p.cert) },
    );
    try {
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      return "sent";
    } catch (e) {
      return (e as MailError).code ?? "failed";
    } finally {
      await mailer.close();
    }
  };
  try {
    assert.equal(await attempt([otherCa], ca), "sent", "the configured CA");
    assert.equal(await attempt([otherCa, ca], undefined), "sent", "a system root");
    assert.match(await attempt([otherCa], undefined), /CERT|VERIFY|SELF_SIGNED/, "neither");
    assert.equal(server.messages.length, 2);
  } finally {
    await server.close();
  }
  const options = smtpTransportOptions(smtpConfig(587), []);
  assert.equal(options.tls?.rejectUnauthorized, true);
  assert.equal(options.pool, true);
  assert.equal(options.maxConnections, MAX_CONNECTIONS);
  assert.equal(options.auth, undefined);
  const withAuth = smtpTransportOptions(
    smtpConfig(587, { username: "u", password: new Secret("p") }),
    [],
  );
  assert.deepEqual(withAuth.auth, { user: "u", pass: "p" });
});

Deno.test("smtp: a host name is verified against the certificate's DNS names", async () => {
  const { server: cert, wrongName } = await pki;
  await withSmtp(
    { tls: cert },
    (port, ca) => smtpConfig(port, { host: "localhost", ca: ca.cert }),
    async (mailer, server) => {
      await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
      assert.equal((await server.waitFor(1))[0]?.secure, true);
    },
  );
  await withSmtp(
    { tls: wrongName },
    (port, ca) => smtpConfig(port, { host: "localhost", ca: ca.cert }),
    async (mailer) => {
      const err = await mailError(mailer.checkHealth());
      assert.equal(err.code, "ERR_TLS_CERT_ALTNAME_INVALID");
      assert.match(err.message, /localhost/);
    },
  );
});
