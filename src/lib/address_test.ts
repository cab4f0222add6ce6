import assert from "node:assert/strict";
import {
  addressDomain,
  isPlainAddress,
  isRecipientAddress,
  type Mailbox,
  parseMailbox,
} from "./address.ts";

Deno.test("isPlainAddress", async (t) => {
  const cases: Array<[string, boolean]> = [
    ["a@b", true],
    ["root@localhost", true],
    ["alice@example.com", true],
    ["first.last+tag@sub.example.co.uk", true],
    ["o'brien@example.com", true],
    ["a!#$%&'*+/=?^_`{|}~-@example.com", true],
    ["jos\u00e9@\u00e9xample.com", true],
    ["a@mail_relay.example.com", true],
    ["", false],
    ["@example.com", false],
    ["alice@", false],
    ["alice", false],
    ["alice@@example.com", false],
    ["a@b@example.com", false],
    [" alice@example.com", false],
    ["alice@example.com ", false],
    ["al ice@example.com", false],
    ["<alice@example.com>", false],
    ["Alice <alice@example.com>", false],
    ["alice@example.com\r\nBcc: evil@example.com", false],
    ["alice@example.com\n", false],
    ["alice\t@example.com", false],
    [".alice@example.com", false],
    ["alice.@example.com", false],
    ["al..ice@example.com", false],
    ["alice@example..com", false],
    ["alice@.example.com", false],
    ["alice@example.com.", false],
    ["alice@-example.com", false],
    ["alice@example-.com", false],
    ['"alice"@example.com', false],
    ["alice@[192.0.2.1]", false],
    ["alice@exa mple.com", false],
    ["alice,bob@example.com", false],
    [`${"a".repeat(65)}@example.com`, false],
    [`${"a".repeat(64)}@example.com`, true],
    [`a@${"b".repeat(64)}.com`, false],
    [`a@${"b".repeat(63)}.com`, true],
    [`a@${"b.".repeat(126)}cc`, false],
    // Non-ASCII letters, digits and marks only: not what Nodemailer's parser reads as a
    // separator or drops (the address checked and recorded would not be the one mailed).
    [
      "\u0441\u0435\u0440\u0433\u0435\u0439@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
      true,
    ],
    ["\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a", true],
    ["cafe\u0301@example.com", true],
    ["a\u00a0security@example.com", false],
    ["b\u2028security@example.com", false],
    ["security\u2029@example.com", false],
    ["security@example.com\u200b", false],
    ["security@example.com\ufeff", false],
    ["sec\u202eurity@example.com", false],
    ["ceo\u0085attacker@evil.example", false],
    ["ceo\u3000x@example.com", false],
    ["a@exa\u00a0mple.com", false],
    ["a\u00adb@example.com", false],
    ["security@ex\u00adample.com", false],
    // What IDNA allows in context stays allowed.
    ["info@col\u00b7legi.cat", true],
    ["user@\u0645\u06cc\u200c\u0647\u0646.ir", true],
    ["x@\u30c6\u30b9\u30c8\u30fb\u30c6\u30b9\u30c8.jp", true],
    ["\u20acuro@example.com", true],
  ];
  for (const [text, expected] of cases) {
    await t.step(`${JSON.stringify(text)} → ${expected}`, () => {
      assert.equal(isPlainAddress(text), expected);
    });
  }
});

Deno.test("parseMailbox accepts plain addresses and display names", async (t) => {
  const cases: Array<[string, Mailbox]> = [
    ["noreply@example.com", { address: "noreply@example.com" }],
    ["  noreply@example.com  ", { address: "noreply@example.com" }],
    ["<noreply@example.com>", { address: "noreply@example.com" }],
    ["Teleport <noreply@example.com>", { name: "Teleport", address: "noreply@example.com" }],
    ["Teleport<noreply@example.com>", { name: "Teleport", address: "noreply@example.com" }],
    ["Teleport Access  <a@b.c>", { name: "Teleport Access", address: "a@b.c" }],
    ['"Team, Ops" <a@b.c>', { name: "Team, Ops", address: "a@b.c" }],
    ['"Team <Ops>"<a@b.c>', { name: "Team <Ops>", address: "a@b.c" }],
    ['"Say \\"hi\\"" <a@b.c>', { name: 'Say "hi"', address: "a@b.c" }],
    ['"" <a@b.c>', { address: "a@b.c" }],
    ["J. R. Doe <a@b.c>", { name: "J. R. Doe", address: "a@b.c" }],
    ["J\u00fcrgen <j@b.c>", { name: "J\u00fcrgen", address: "j@b.c" }],
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => {
      assert.deepEqual(parseMailbox(text), expected);
    });
  }
});

Deno.test("parseMailbox rejects malformed mailboxes", async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["", /: empty$/],
    ["   ", /: empty$/],
    ["noreply", /: not a valid address$/],
    ["Teleport noreply@example.com", /: not a valid address$/],
    ["Teleport <noreply>", /: not a valid address$/],
    ["Teleport < noreply@example.com >", /: not a valid address$/],
    ["Teleport <>", /: not a valid address$/],
    ["Teleport <a@b.c", /: expected the address to end with >$/],
    ["Teleport <a@b.c> trailing", /: expected the address to end with >$/],
    ["Teleport <a@b.c>>", /: expected the address to end with >$/],
    ["a@b.c>", /: not a valid address$/],
    ["Team, Ops <a@b.c>", /: display name has special characters and must be quoted$/],
    ["Team@Ops <a@b.c>", /must be quoted$/],
    ['"Team <a@b.c>', /: unterminated quoted display name$/],
    ['"Team" a@b.c', /: expected <address> after the name$/],
    ["Teleport <a@b.c>\r\nBcc: x@y.z", /: contains a control character$/],
    ["Tele\nport <a@b.c>", /: contains a control character$/],
    ['"Team\r" <a@b.c>', /: contains a control character$/],
    ["Tele\u2028port <a@b.c>", /: contains a control character$/],
    ['"Team\u0085" <a@b.c>', /: contains a control character$/],
    ["Teleport <a\u00a0b@example.com>", /: not a valid address$/],
  ];
  for (const [text, reason] of cases) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseMailbox(text), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.ok(
          error.message.startsWith(`Invalid email address ${JSON.stringify(text)}: `),
          error.message,
        );
        assert.match(error.message, reason);
        return true;
      });
    });
  }
});

Deno.test("addressDomain returns the domain of a plain address", () => {
  assert.equal(addressDomain("noreply@example.com"), "example.com");
  assert.equal(addressDomain("a@Mail.Example.COM"), "Mail.Example.COM");
  assert.throws(
    () => addressDomain("Teleport <noreply@example.com>"),
    /^TypeError: Invalid email address "Teleport <noreply@example.com>": not a plain address$/,
  );
  assert.throws(() => addressDomain("noreply"), TypeError);
});

Deno.test("isRecipientAddress: a plain address without plugin data's thread separator", () => {
  assert.equal(isRecipientAddress("ops@example.com"), true);
  // Plugin data keeps a thread as <address>/<time>/<id>; the Go plugin splits on "/".
  assert.equal(isRecipientAddress("ops/oncall@example.com"), false);
  assert.equal(isPlainAddress("ops/oncall@example.com"), true, "still a plain address");
  assert.deepEqual(parseMailbox("Ops <ops/alerts@example.com>"), {
    name: "Ops",
    address: "ops/alerts@example.com",
  }, "the sender is never stored: it may have one");
  assert.equal(isRecipientAddress("Ops <ops@example.com>"), false);
});
