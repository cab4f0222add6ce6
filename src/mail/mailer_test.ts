import assert from "node:assert/strict";
import {
  abortable,
  bareMessageId,
  isCertificateErrorCode,
  MailError,
  prepareEmail,
  redact,
  sanitizeHeaderValue,
} from "./mailer.ts";

Deno.test("mailer: header values never carry a line break or control character", () => {
  const table: Array<[string, string]> = [
    ["plain", "plain"],
    ["a\r\nBcc: x@evil.example", "a Bcc: x@evil.example"],
    ["a\nb\rc\r\n\r\nd", "a b c d"],
    ["tab\tkept", "tab\tkept"],
    ["nul\u0000del\u007fesc\u001b", "nuldelesc"],
    ["ünïcödé ✅", "ünïcödé ✅"],
  ];
  for (const [input, want] of table) assert.equal(sanitizeHeaderValue(input), want);
});

Deno.test("mailer: Message-IDs lose any angle brackets and whitespace", () => {
  const table: Array<[string, string]> = [
    ["abc@example.com", "abc@example.com"],
    ["<abc@example.com>", "abc@example.com"],
    ["<<abc@example.com>>", "abc@example.com"],
    [" <abc@example.com> ", "abc@example.com"],
    ["<abc@example.com>\r\nBcc: x", "abc@example.comBcc:x"],
  ];
  for (const [input, want] of table) assert.equal(bareMessageId(input), want);
});

Deno.test("mailer: prepareEmail adds Auto-Submitted and keeps the caller's headers in order", () => {
  const prepared = prepareEmail({
    to: "a@example.com",
    subject: "Role Request\r\nBcc: x@evil.example",
    text: "t",
    html: "<p>t</p>",
    inReplyTo: "<<id@example.com>>",
    headers: { "X-One": "1\r\n2", "X-Two": "2" },
  });
  assert.deepEqual(prepared, {
    to: "a@example.com",
    subject: "Role Request Bcc: x@evil.example",
    text: "t",
    html: "<p>t</p>",
    inReplyTo: "id@example.com",
    headers: [["Auto-Submitted", "auto-generated"], ["X-One", "1 2"], ["X-Two", "2"]],
  });
  assert.deepEqual(prepareEmail({ to: "a@example.com", subject: "s", text: "t" }), {
    to: "a@example.com",
    subject: "s",
    text: "t",
    headers: [["Auto-Submitted", "auto-generated"]],
  });
});

Deno.test("mailer: prepareEmail refuses what no retry can fix, permanently", () => {
  const bad = [
    { to: "Alice <a@example.com>" },
    { to: "a@example.com\r\nBcc: x@evil.example" },
    { to: "a@example.com", inReplyTo: "<>" },
    { to: "a@example.com", headers: { "Bad Name": "x" } },
    { to: "a@example.com", headers: { "X-Evil\r\nBcc": "x" } },
    { to: "a@example.com", headers: { bcc: "x@evil.example" } },
    { to: "a@example.com", headers: { "Auto-Submitted": "no" } },
  ];
  for (const fields of bad) {
    assert.throws(
      () => prepareEmail({ subject: "s", text: "t", ...fields }),
      (err) => err instanceof MailError && !err.transient && err.code === "EMESSAGE",
      JSON.stringify(fields),
    );
  }
});

Deno.test("mailer: MailError keeps only the fields given", () => {
  const cause = new Error("socket");
  const err = new MailError("SMTP send failed", {
    transient: true,
    code: "ESOCKET",
    status: 421,
    response: "421 busy",
    recipient: "a@example.com",
    cause,
  });
  assert.equal(err.name, "MailError");
  assert.equal(err.cause, cause);
  assert.deepEqual(
    [err.transient, err.code, err.status, err.response, err.recipient],
    [true, "ESOCKET", 421, "421 busy", "a@example.com"],
  );
  const bare = new MailError("x", { transient: false });
  assert.ok(!("code" in bare) && !("recipient" in bare) && !("cause" in bare));
});

Deno.test("mailer: redact and certificate codes", () => {
  assert.equal(redact("login pw=hunter2 failed", "hunter2"), "login pw=[redacted] failed");
  assert.equal(redact("nothing", undefined), "nothing");
  assert.equal(redact("nothing", ""), "nothing");
  for (
    const code of [
      "CERT_HAS_EXPIRED",
      "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      "ERR_TLS_CERT_ALTNAME_INVALID",
      "DEPTH_ZERO_SELF_SIGNED_CERT",
      "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    ]
  ) {
    assert.ok(isCertificateErrorCode(code), code);
  }
  for (const code of [undefined, "ECONNRESET", "ETIMEDOUT", "ESOCKET"]) {
    assert.ok(!isCertificateErrorCode(code), String(code));
  }
});

Deno.test("mailer: abortable rejects with the reason when aborted first", async () => {
  const controller = new AbortController();
  const never = new Promise<never>(() => {});
  const pending = abortable(never, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  assert.equal(
    await abortable(Promise.resolve(1), controller.signal).catch(() => "aborted"),
    "aborted",
  );
  assert.equal(await abortable(Promise.resolve(2), undefined), 2);
  assert.equal(await abortable(Promise.resolve(3), new AbortController().signal), 3);
});
