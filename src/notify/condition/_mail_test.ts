import assert from "node:assert/strict";
import { emailLocal, parseSingleAddress } from "./_mail.ts";

Deno.test("parseSingleAddress reads what Go's net/mail.ParseAddress reads", () => {
  const table: [string, string][] = [
    ["jdoe@machine.example", "jdoe@machine.example"],
    ["John Doe <jdoe@machine.example>", "jdoe@machine.example"],
    ['"Joe Q. Public" <john.q.public@example.com>', "john.q.public@example.com"],
    ["<boss@nil.test>", "boss@nil.test"],
    ['"Giant; \\"Big\\" Box" <sysservices@example.net>', "sysservices@example.net"],
    ["  alice@example.com  ", "alice@example.com"],
    ["alice@example.com (Alice Liddell)", "alice@example.com"],
    ['"a b"@example.com', "a b@example.com"],
    ['"a@b"@example.com', "a@b@example.com"],
    ["Group: alice@example.com;", "alice@example.com"],
    ["a@[192.168.0.1]", "a@[192.168.0.1]"],
    ["a@[IPv6:::1]", "a@[IPv6:::1]"],
    ["a@[IPv6:2001:db8::1]", "a@[IPv6:2001:db8::1]"],
    ["=?utf-8?q?J=C3=B6rg?= <j@example.com>", "j@example.com"],
    ["=?ISO-8859-1?B?SvZyZw==?= <j@example.com>", "j@example.com"],
    ["Jörg <jörg@exämple.com>", "jörg@exämple.com"],
  ];
  for (const [input, address] of table) {
    assert.equal(parseSingleAddress(input), address, input);
  }
});

Deno.test("parseSingleAddress refuses what Go refuses, with Go's words", () => {
  const table: [string, string][] = [
    ["", "mail: no address"],
    ["alice", "mail: missing '@' or angle-addr"],
    ["Alice Liddell", "mail: no angle-addr"],
    ["a@b@c", 'mail: expected single address, got "@c"'],
    ["a@b, c@d", 'mail: expected single address, got ", c@d"'],
    ["<alice@example.com", "mail: unclosed angle-addr"],
    ["Group: ;", "mail: empty group"],
    ["Group: a@b.c, d@e.f;", "mail: group with multiple addresses"],
    ['"" <@example.com>', "mail: invalid string"],
    [".a@example.com", "mail: missing '@' or angle-addr"], // a leading dot is no addr-spec
    ["<a@[300.1.1.1]>", 'mail: invalid IP address in domain-literal: "300.1.1.1"'],
    ["<a@[IPv6:1::2::3]>", 'mail: invalid IPv6 address in domain-literal: "IPv6:1::2::3"'],
    [
      "=?x-unknown?q?abc?= <j@example.com>",
      'mail: missing word in phrase: charset not supported: "x-unknown"',
    ],
    ["a@b (unclosed", "mail: misformatted parenthetical comment"],
    // A bare addr-spec that fails is read again as a display name, so its error is that one.
    ["a@[300.1.1.1]", "mail: missing '@' or angle-addr"],
  ];
  for (const [input, message] of table) {
    assert.throws(() => parseSingleAddress(input), { message }, input);
  }
});

Deno.test("emailLocal is Teleport's parse.EmailLocal", () => {
  assert.equal(emailLocal("alice@example.com"), "alice");
  assert.equal(emailLocal("Bob <bob@example.com>"), "bob");
  assert.equal(emailLocal('"a@b"@example.com'), "a"); // the first "@" of the parsed address
  assert.throws(() => emailLocal(""), { message: 'found empty "email.local" argument' });
  assert.throws(() => emailLocal("alice"), {
    message: `failed to parse "email.local" argument "alice": mail: missing '@' or angle-addr`,
  });
});
