/**
 * Redaction of every form in which we send a credential (issue 12): the
 * secret itself, AUTH PLAIN (`base64(\0user\0password)`), AUTH LOGIN
 * (`base64(password)`), HTTP Basic (`base64(api:key)`), with or without
 * padding, truncated, or re-encoded by the server.
 */
import assert from "node:assert/strict";
import { base64, basicAuthRedaction, redact, scrubError, smtpRedaction } from "./mailer.ts";

const USER = "teleport";
const PASSWORD = "s3cret-Passw0rd!";
const KEY = "key-0123456789abcdef";

Deno.test("redact: every encoding of the SMTP password and the Mailgun key", () => {
  const smtp = smtpRedaction(USER, PASSWORD);
  const mailgun = basicAuthRedaction("api", KEY);
  const plain = base64(`\0${USER}\0${PASSWORD}`);
  const basic = base64(`api:${KEY}`);
  const table: Array<
    [name: string, text: string, redaction: Parameters<typeof redact>[1], out: string]
  > = [
    ["the password", `535 bad ${PASSWORD}`, smtp, "535 bad [redacted]"],
    ["AUTH PLAIN", `535 5.7.8 got ${plain}`, smtp, "535 5.7.8 got [redacted]"],
    ["AUTH PLAIN unpadded", `got ${plain.replace(/=+$/, "")}.`, smtp, "got [redacted]."],
    [
      "AUTH LOGIN",
      `454 ${base64(USER)} ${base64(PASSWORD)}`,
      smtp,
      `454 ${base64(USER)} [redacted]`,
    ],
    ["AUTH PLAIN truncated", `got ${plain.slice(0, 20)}...`, smtp, "got [redacted]..."],
    [
      "re-encoded with an authorization identity",
      `got ${base64(`a\0${USER}\0${PASSWORD}`)}`,
      smtp,
      "got [redacted]",
    ],
    ["Basic", `401 Authorization: Basic ${basic}`, mailgun, "401 Authorization: Basic [redacted]"],
    ["the key", `401 bad key ${KEY}`, mailgun, "401 bad key [redacted]"],
    ["base64 of the key", `401 ${base64(KEY)}`, mailgun, "401 [redacted]"],
    // What is no form of the secret stays, so the server's answer is still useful.
    [
      "an unrelated base64 word",
      "334 VXNlcm5hbWU6 UGFzc3dvcmQ6",
      smtp,
      "334 VXNlcm5hbWU6 UGFzc3dvcmQ6",
    ],
    ["a plain secret string", `x ${PASSWORD} y`, PASSWORD, "x [redacted] y"],
    ["no secret", `x ${PASSWORD}`, undefined, `x ${PASSWORD}`],
    ["an empty secret", "x", "", "x"],
  ];
  for (const [name, text, redaction, out] of table) {
    assert.equal(redact(text, redaction), out, name);
  }
  assert.equal(smtpRedaction(USER, undefined), undefined);
  assert.equal(smtpRedaction(USER, ""), undefined);
});

Deno.test("scrubError redacts a kept cause in place, nested causes too", () => {
  const smtp = smtpRedaction(USER, PASSWORD);
  const plain = base64(`\0${USER}\0${PASSWORD}`);
  const inner = new Error(`socket said ${plain}`);
  const err = Object.assign(new Error(`Invalid login: 535 ${plain}`, { cause: inner }), {
    response: `535 ${plain}`,
  });
  assert.equal(scrubError(err, smtp), err);
  assert.equal(err.message, "Invalid login: 535 [redacted]");
  assert.equal(err.response, "535 [redacted]");
  assert.equal(inner.message, "socket said [redacted]");
  assert.ok(!Deno.inspect(err, { depth: 10 }).includes(plain));
  // A cause that loops is no trap.
  const a: Error & { cause?: unknown } = new Error(PASSWORD);
  a.cause = a;
  scrubError(a, PASSWORD);
  assert.equal(a.message, "[redacted]");
});
