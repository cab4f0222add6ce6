import assert from "node:assert/strict";
import { recipientsFor, routeRecipients, type RuleMatch } from "./recipients.ts";

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
      name: "duplicates that differ only in letter case are merged (issue 11: one mailbox)",
      roles: [],
      suggested: ["Bob@example.com", "bob@example.com"],
      recipients: ["Bob@example.com"],
    },
    {
      name: "entries that are not plain addresses are dropped and reported once",
      roles: ["dev"],
      suggested: [
        "not-an-email",
        "Bob <bob@example.com>",
        " bob@example.com",
        "not-an-email",
        // Plugin data's thread separator: the Go plugin would drop its thread.
        "ops/oncall@example.com",
        "ok@example.com",
      ],
      recipients: ["eng@example.com", "lead@example.com", "ok@example.com"],
      dropped: [
        "not-an-email",
        "Bob <bob@example.com>",
        " bob@example.com",
        "ops/oncall@example.com",
      ],
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

Deno.test("routeRecipients: rules decide when they name someone, else the role map", async (t) => {
  const request = { roles: ["dev"], suggestedReviewers: ["bob@example.com"] };
  const cases: {
    name: string;
    match?: RuleMatch;
    config?: Record<string, readonly string[]>;
    recipients: string[];
    source: "rules" | "role_to_recipients";
    notes: unknown[];
  }[] = [
    {
      name: "no rule matches: the role map and the suggested reviewers",
      recipients: ["eng@example.com", "lead@example.com", "bob@example.com"],
      source: "role_to_recipients",
      notes: [],
    },
    {
      name: "a matching rule replaces the role map (suggested reviewers too)",
      match: { recipients: ["oncall@example.com"], dropped: [], rules: ["r1"] },
      recipients: ["oncall@example.com"],
      source: "rules",
      notes: [{ kind: "from_rules", rules: ["r1"] }],
    },
    {
      name: "rule entries that are not addresses are dropped with a note",
      match: { recipients: ["oncall@example.com"], dropped: ["#ops-channel"], rules: ["r1"] },
      recipients: ["oncall@example.com"],
      source: "rules",
      notes: [
        { kind: "from_rules", rules: ["r1"] },
        { kind: "not_an_address", entry: "#ops-channel" },
      ],
    },
    {
      name: "matching rules that name nobody fall back to the role map",
      match: { recipients: [], dropped: ["#ops-channel"], rules: ["r1", "r2"] },
      recipients: ["eng@example.com", "lead@example.com", "bob@example.com"],
      source: "role_to_recipients",
      notes: [
        { kind: "not_an_address", entry: "#ops-channel" },
        { kind: "rules_name_nobody", rules: ["r1", "r2"] },
      ],
    },
    {
      name: "nobody at all",
      config: { "*": ["not an address"] },
      recipients: ["bob@example.com"],
      source: "role_to_recipients",
      notes: [{ kind: "not_an_address", entry: "not an address" }],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const routing = routeRecipients(request, c.match, c.config ?? CONFIG);
      assert.deepEqual(routing, { recipients: c.recipients, source: c.source, notes: c.notes });
    });
  }
  await t.step("no recipient at all is a note", () => {
    const routing = routeRecipients({ roles: ["x"], suggestedReviewers: [] }, undefined, {
      "*": [],
    });
    assert.deepEqual(routing.notes, [{ kind: "no_recipient" }]);
  });
});

Deno.test("addresses that differ only in letter case are one recipient, spelled as first seen", () => {
  const { recipients } = recipientsFor(
    {
      roles: ["dev"],
      suggestedReviewers: ["OPS@example.com", "ops@example.com", "Eng@Example.com"],
    },
    { "*": ["x@example.com"], dev: ["Ops@Example.com", "eng@example.com"] },
  );
  assert.deepEqual(recipients, ["Ops@Example.com", "eng@example.com"]);
});
