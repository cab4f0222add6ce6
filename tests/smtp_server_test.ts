import assert from "node:assert/strict";
import {
  decodeEncodedWords,
  decodeQuotedPrintable,
  parseContentType,
  parseHeaders,
  parseMime,
} from "./smtp_server.ts";

Deno.test("smtp fake: headers are unfolded and kept in order", () => {
  assert.deepEqual(parseHeaders("Subject: a\r\n b\r\n\tc\r\nX-A: 1\r\nX-A: 2"), [
    ["Subject", "a b c"],
    ["X-A", "1"],
    ["X-A", "2"],
  ]);
});

Deno.test("smtp fake: content types, encoded words, quoted-printable", () => {
  assert.deepEqual(parseContentType('Text/HTML; charset="utf-8"; format=flowed'), {
    type: "text/html",
    params: { charset: "utf-8", format: "flowed" },
  });
  assert.equal(decodeEncodedWords("=?UTF-8?Q?=E2=9C=85_ok?= =?UTF-8?B?w7w=?= end"), "✅ okü end");
  assert.equal(
    new TextDecoder().decode(decodeQuotedPrintable("caf=C3=A9 =\r\nsoft=3D")),
    "café soft=",
  );
});

Deno.test("smtp fake: a multipart/alternative message with base64 and quoted-printable parts", () => {
  const raw = [
    "Subject: =?UTF-8?Q?Role_Request_=E2=9C=85?=",
    'Content-Type: multipart/alternative; boundary="--b1"',
    "",
    "preamble",
    "----b1",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Status: =E2=9C=85 APPROVED",
    "----b1",
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "",
    btoa("<p>ok</p>"),
    "----b1--",
    "epilogue",
  ].join("\r\n");
  const mime = parseMime(raw);
  assert.equal(mime.contentType, "multipart/alternative");
  assert.deepEqual(mime.parts.map((p) => [p.contentType, p.body]), [
    ["text/plain", "Status: ✅ APPROVED"],
    ["text/html", "<p>ok</p>"],
  ]);
});
