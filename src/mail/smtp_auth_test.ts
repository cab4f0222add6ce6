/**
 * SMTP credentials on the wire (issue 12): AUTH never goes out unencrypted
 * unless `smtp.allow_insecure_auth` says so, a session that cannot
 * authenticate fails, and every encoding of the password a server may echo
 * (AUTH PLAIN, AUTH LOGIN, the password itself) is redacted from errors.
 * Against the project's SMTP server (`tests/smtp_server.ts`).
 */
import assert from "node:assert/strict";
import { rejection as rejectionOf } from "../../tests/assert.ts";
import type { SmtpConfig } from "../config/types.ts";
import { Secret } from "../lib/secret.ts";
import { issueCert, makeCa } from "../../tests/pki.ts";
import { type FakeSmtpOptions, startSmtpServer } from "../../tests/smtp_server.ts";
import { type Mailer, MailError } from "./mailer.ts";
import { createSmtpMailer } from "./smtp.ts";

const SENDER = "Teleport Access <noreply@example.com>";
const USER = "teleport";
const PASSWORD = "correct horse battery staple";

const pki = (async () => {
  const ca = await makeCa("Test SMTP CA");
  const server = await issueCert(ca, {
    commonName: "localhost",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    usage: "server",
  });
  return { ca, server };
})();

function smtpConfig(port: number, overrides: Partial<SmtpConfig> = {}): SmtpConfig {
  return { kind: "smtp", host: "127.0.0.1", port, starttlsPolicy: "mandatory", ...overrides };
}

/** Starts a fake server and a mailer for it; disposes both. */
async function withSmtp(
  serverOpts: FakeSmtpOptions,
  cfg: (port: number, ca: string) => SmtpConfig,
  run: (mailer: Mailer, server: Awaited<ReturnType<typeof startSmtpServer>>) => Promise<void>,
): Promise<void> {
  const { ca } = await pki;
  const server = await startSmtpServer(serverOpts);
  const mailer = createSmtpMailer(cfg(server.port, ca.cert), SENDER, { trustedCas: () => [] });
  try {
    await run(mailer, server);
  } finally {
    await mailer.close();
    await server.close();
  }
}

const rejection = (promise: Promise<unknown>) => rejectionOf(promise, MailError);
/** Base64 of UTF-8 text, as an SMTP client sends credentials. */
function b64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

Deno.test("smtp: the password never goes out unencrypted unless allow_insecure_auth says so", async (t) => {
  const { server: cert } = await pki;
  const auth = { username: USER, password: PASSWORD };
  const withUser = { username: USER, password: new Secret(PASSWORD) };
  const cases: Array<{
    name: string;
    server: FakeSmtpOptions;
    cfg: Partial<SmtpConfig>;
    /** The health check's and the send's error, or undefined when both must work. */
    refused?: { code: string; message: RegExp };
    /** What the server must have seen of AUTH. */
    attempts: Array<{ username: string; secure: boolean }>;
  }> = [
    {
      name: "opportunistic, no STARTTLS offered: AUTH would go in the clear, so nothing is sent",
      server: { auth },
      cfg: { starttlsPolicy: "opportunistic", ...withUser },
      refused: {
        code: "EINSECURE",
        message:
          /refusing to send the password unencrypted: the server offered no STARTTLS \(smtp\.allow_insecure_auth = true would allow it\)/,
      },
      attempts: [],
    },
    {
      name: "opportunistic, STARTTLS offered but refused: no silent skip of AUTH",
      server: {
        tls: cert,
        auth,
        refuseStarttls: { code: 454, message: "4.7.0 TLS not available" },
      },
      cfg: { starttlsPolicy: "opportunistic", ...withUser },
      refused: {
        code: "EINSECURE",
        message: /refusing to send the password unencrypted: the server refused STARTTLS/,
      },
      attempts: [],
    },
    {
      name: "mandatory, STARTTLS offered but refused: fails at STARTTLS, as before",
      server: {
        tls: cert,
        auth,
        refuseStarttls: { code: 454, message: "4.7.0 TLS not available" },
      },
      cfg: withUser,
      refused: { code: "ETLS", message: /STARTTLS/ },
      attempts: [],
    },
    {
      name: "a username but the (encrypted) server offers no AUTH: the health check fails",
      server: { tls: cert },
      cfg: withUser,
      refused: { code: "EAUTH", message: /Invalid login|AUTH|authentication/i },
      attempts: [],
    },
    {
      name: "opportunistic with STARTTLS: AUTH after TLS",
      server: { tls: cert, auth },
      cfg: { starttlsPolicy: "opportunistic", ...withUser },
      attempts: [{ username: USER, secure: true }, { username: USER, secure: true }],
    },
    {
      name: "the opt-in: AUTH in the clear to a server without STARTTLS",
      server: { auth },
      cfg: { starttlsPolicy: "opportunistic", ...withUser, allowInsecureAuth: true },
      attempts: [{ username: USER, secure: false }, { username: USER, secure: false }],
    },
    {
      name: "the opt-in: disabled STARTTLS sends AUTH in the clear",
      server: { auth },
      cfg: { starttlsPolicy: "disabled", ...withUser, allowInsecureAuth: true },
      attempts: [{ username: USER, secure: false }, { username: USER, secure: false }],
    },
  ];
  for (const { name, server: serverOpts, cfg, refused, attempts } of cases) {
    await t.step(name, async () => {
      await withSmtp(
        serverOpts,
        (port, ca) => smtpConfig(port, { ca, ...cfg }),
        async (mailer, server) => {
          const email = { to: "a@example.com", subject: "s", text: "t" };
          if (refused === undefined) {
            await mailer.checkHealth();
            await mailer.send(email);
            assert.equal((await server.waitFor(1)).length, 1);
          } else {
            for (
              const err of [
                await rejection(mailer.checkHealth()),
                await rejection(mailer.send(email)),
              ]
            ) {
              assert.equal(err.code, refused.code, err.message);
              assert.match(err.message, refused.message);
              assert.ok(!err.message.includes(PASSWORD));
            }
            assert.equal(server.messages.length, 0, "a message went out");
          }
          assert.deepEqual(server.authAttempts, attempts);
        },
      );
    });
  }
});

Deno.test("smtp: an AUTH failure that echoes what was sent (PLAIN, LOGIN, raw) is redacted", async (t) => {
  const { server: cert } = await pki;
  const wrong = "Wr0ng-S3cret-Passw0rd-that-is-long";
  const forms = [
    wrong,
    b64(`\0${USER}\0${wrong}`),
    b64(`\0${USER}\0${wrong}`).replace(/=+$/, ""),
    b64(wrong),
    b64(wrong).replace(/=+$/, ""),
    // A truncated echo still gives half the password away.
    b64(`\0${USER}\0${wrong}`).slice(0, 30),
  ];
  for (const method of ["PLAIN", "LOGIN"]) {
    await t.step(`AUTH ${method}`, async () => {
      await withSmtp(
        {
          tls: cert,
          auth: { username: USER, password: PASSWORD },
          authMethods: [method],
          echoCredentials: true,
        },
        (port, ca) => smtpConfig(port, { username: USER, password: new Secret(wrong), ca }),
        async (mailer, server) => {
          for (
            const err of [
              await rejection(mailer.checkHealth()),
              await rejection(mailer.send({ to: "a@example.com", subject: "s", text: "t" })),
            ]
          ) {
            assert.equal(err.code, "EAUTH");
            assert.match(
              err.response ?? "",
              /^535 5\.7\.8 Authentication credentials invalid: got /,
            );
            const everything = [
              err.message,
              err.response,
              JSON.stringify(err),
              Deno.inspect(err, { depth: 10 }),
              String((err.cause as Error | undefined)?.stack),
            ].join("\n");
            for (const form of forms) {
              assert.ok(!everything.includes(form), `${JSON.stringify(form)} in:\n${everything}`);
            }
            assert.match(err.message, /\[redacted\]/);
          }
          assert.equal(server.authFailures.length, 2);
        },
      );
    });
  }
});
