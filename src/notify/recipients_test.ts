import assert from "node:assert/strict";
import { recipientsFor } from "./recipients.ts";

const CONFIG: Record<string, readonly string[]> = {
  "*": ["security@example.com"],
  dev: ["eng@example.com", "lead@example.com"],
  dba: ["dba-team@example.com", "eng@example.com"],
  empty: [],
};

Deno.test("recipientsFor follows SPEC §5 in a stable order", () => {
  const cases: {
    name: string;
    roles: string[];
    suggested?: string[];
    config?: Record<string, readonly string[]>;
    recipients: string[];
    dropped?: string[];
  }[] = [
    {
      name: "a role's own list",
      roles: ["dev"],
      recipients: ["eng@example.com", "lead@example.com"],
    },
    { name: "unknown role falls back to *", roles: ["ops"], recipients: ["security@example.com"] },
    { name: "empty list falls back to *", roles: ["empty"], recipients: ["security@example.com"] },
    {
      name: "roles in request order, then suggested reviewers",
      roles: ["dba", "dev"],
      suggested: ["bob@example.com"],
      recipients: [
        "dba-team@example.com",
        "eng@example.com",
        "lead@example.com",
        "bob@example.com",
      ],
    },
    {
      name: "request order decides, not config order",
      roles: ["dev", "dba"],
      recipients: ["eng@example.com", "lead@example.com", "dba-team@example.com"],
    },
    {
      name: "duplicates keep their first place",
      roles: ["ops", "dev", "other"],
      suggested: ["lead@example.com", "security@example.com", "new@example.com"],
      recipients: [
        "security@example.com",
        "eng@example.com",
        "lead@example.com",
        "new@example.com",
      ],
    },
    {
      name: "only exact duplicates are merged",
      roles: [],
      suggested: ["Bob@example.com", "bob@example.com"],
      recipients: ["Bob@example.com", "bob@example.com"],
    },
    {
      name: "entries that are not plain addresses are dropped and reported once",
      roles: ["dev"],
      suggested: [
        "not-an-email",
        "Bob <bob@example.com>",
        " bob@example.com",
        "not-an-email",
        "ok@example.com",
      ],
      recipients: ["eng@example.com", "lead@example.com", "ok@example.com"],
      dropped: ["not-an-email", "Bob <bob@example.com>", " bob@example.com"],
    },
    {
      name: "no roles, no reviewers: nobody",
      roles: [],
      recipients: [],
    },
    {
      name: "no * entry (never after validation): roles without a list reach nobody",
      roles: ["ops"],
      suggested: ["bob@example.com"],
      config: { dev: ["eng@example.com"] },
      recipients: ["bob@example.com"],
    },
    {
      name: "a role named like an Object member is just a role",
      roles: ["constructor", "__proto__"],
      recipients: ["security@example.com"],
    },
  ];

  for (const c of cases) {
    const result = recipientsFor(
      { roles: c.roles, suggestedReviewers: c.suggested ?? [] },
      c.config ?? CONFIG,
    );
    assert.deepEqual(result, { recipients: c.recipients, dropped: c.dropped ?? [] }, c.name);
  }
});

Deno.test("recipientsFor on the wire sample: bad suggested reviewer dropped", () => {
  const result = recipientsFor(
    { roles: ["editor", "dba"], suggestedReviewers: ["bob@example.com", "not-an-email"] },
    { "*": ["security@example.com"], dba: ["dba-team@example.com"] },
  );
  assert.deepEqual(result, {
    recipients: ["security@example.com", "dba-team@example.com", "bob@example.com"],
    dropped: ["not-an-email"],
  });
});
