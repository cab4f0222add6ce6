import assert from "node:assert/strict";
import { messageIdGenerator, senderDomain } from "./message_id.ts";

Deno.test("message id: random part, time and the sender's domain", () => {
  const next = messageIdGenerator("Teleport <noreply@mail.example.com>", {
    randomBytes: (bytes) => bytes.fill(0xab),
    now: () => 1_700_000_000_000,
  });
  assert.equal(next(), `${"ab".repeat(16)}.${(1_700_000_000_000).toString(36)}@mail.example.com`);
});

Deno.test("message id: unique, no brackets, sender domain for every sender form", () => {
  for (
    const sender of [
      "noreply@example.com",
      "Teleport <noreply@example.com>",
      '"Ops, Team" <noreply@example.com>',
    ]
  ) {
    assert.equal(senderDomain(sender), "example.com");
    const next = messageIdGenerator(sender);
    const ids = new Set(Array.from({ length: 1000 }, next));
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^[0-9a-f]{32}\.[0-9a-z]+@example\.com$/);
  }
});

Deno.test("message id: an invalid sender is refused", () => {
  assert.throws(() => messageIdGenerator("not an address"), TypeError);
});

Deno.test("message id: an internationalised sender domain is written as its punycode", () => {
  const next = messageIdGenerator("Teleport <noreply@ex\u00e4mple.com>");
  assert.match(next(), /^[0-9a-f]{32}\.[0-9a-z]+@xn--exmple-cua\.com$/);
});
