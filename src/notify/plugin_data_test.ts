import assert from "node:assert/strict";
import {
  bareMessageId,
  decodePluginData,
  type EmailPluginData,
  EMPTY_PLUGIN_DATA,
  encodePluginData,
  formatThreadTimestamp,
  parseThreadTimestamp,
} from "./plugin_data.ts";

// The `email` entry of teleport-wire/plugin_data_seq.txt, as a Go plugin stored it.
const WIRE_SAMPLE = {
  user: "alice@example.com",
  roles: "editor,dba",
  request_reason: "Deploying hotfix #42",
  email_threads: "ops@example.com/2026-11-22 10:00:00.5 +0000 UTC m=+1.0/" +
    "1D4Q8ZC3K2ABC.3W5E11264SGSF@host," +
    "bob@example.com/2026-11-22 10:00:01 +0000 UTC/<20261122100001.1.abc@mg.example.com>",
};

const data = (overrides: Partial<EmailPluginData>): EmailPluginData => ({
  ...EMPTY_PLUGIN_DATA,
  ...overrides,
});

Deno.test("decodePluginData reads the record the Go plugin stored (wire sample)", () => {
  assert.deepEqual(decodePluginData(WIRE_SAMPLE), {
    user: "alice@example.com",
    roles: ["editor", "dba"],
    requestReason: "Deploying hotfix #42",
    reviewsCount: 0,
    resolution: "",
    resolveReason: "",
    emailThreads: [
      {
        email: "ops@example.com",
        timestamp: "2026-11-22 10:00:00.5 +0000 UTC m=+1.0",
        messageId: "1D4Q8ZC3K2ABC.3W5E11264SGSF@host",
      },
      {
        email: "bob@example.com",
        timestamp: "2026-11-22 10:00:01 +0000 UTC",
        messageId: "20261122100001.1.abc@mg.example.com",
      },
    ],
    extra: {},
  });
});

Deno.test("encodePluginData writes the Go plugin's format (its own test vector)", () => {
  const encoded = encodePluginData(data({
    user: "user-foo",
    roles: ["role-foo", "role-bar"],
    requestReason: "foo reason",
    reviewsCount: 3,
    resolution: "APPROVED",
    resolveReason: "foo ok",
    emailThreads: [
      { email: "E1", messageId: "M1", timestamp: "0000001" },
      { email: "E2", messageId: "M2", timestamp: "0000002" },
    ],
  }));
  // In the Go plugin's key order.
  const expected = {
    user: "user-foo",
    roles: "role-foo,role-bar",
    request_reason: "foo reason",
    reviews_count: "3",
    resolution: "APPROVED",
    resolve_reason: "foo ok",
    email_threads: "E1/0000001/M1,E2/0000002/M2",
  };
  assert.deepEqual(encoded, expected);
  assert.deepEqual(Object.keys(encoded), Object.keys(expected));
});

Deno.test("no data and an empty map decode to the empty record, which encodes to nothing", () => {
  assert.deepEqual(decodePluginData(undefined), EMPTY_PLUGIN_DATA);
  assert.deepEqual(decodePluginData({}), EMPTY_PLUGIN_DATA);
  assert.deepEqual(encodePluginData(EMPTY_PLUGIN_DATA), {});
});

Deno.test("encode → decode round trips", () => {
  const cases: [string, EmailPluginData][] = [
    ["empty", EMPTY_PLUGIN_DATA],
    ["just created", data({ user: "alice@example.com", roles: ["dba"], requestReason: "r" })],
    ["one role", data({ user: "u", roles: ["editor"] })],
    ["reviews", data({ user: "u", roles: ["a", "b"], reviewsCount: 12 })],
    ["promoted", data({ resolution: "PROMOTED", resolveReason: "to access list" })],
    ["expired", data({ resolution: "EXPIRED" })],
    ["a peer's unknown resolution", data({ resolution: "ESCALATED" })],
    ["reason with , and /", data({ requestReason: "a, b / c", resolveReason: "x/y,z" })],
    [
      "threads",
      data({
        emailThreads: [
          {
            email: "ops@example.com",
            timestamp: "2026-11-22 10:00:00.5 +0000 UTC",
            messageId: "a.b@mg.example.com",
          },
          { email: "bob@example.com", timestamp: "", messageId: "" },
        ],
      }),
    ],
    [
      "address with a slash",
      data({
        emailThreads: [{ email: "dept/ops@example.com", timestamp: "t", messageId: "m@x" }],
      }),
    ],
    ["our own keys", data({ user: "u", extra: { claim_owner: "host-1", claim_until: "99" } })],
  ];
  for (const [name, value] of cases) {
    assert.deepEqual(decodePluginData(encodePluginData(value)), value, name);
  }
});

Deno.test("decode → encode keeps the stored bytes of a canonical record", () => {
  const stored = { ...WIRE_SAMPLE, email_threads: WIRE_SAMPLE.email_threads.replace(/[<>]/g, "") };
  assert.deepEqual(encodePluginData(decodePluginData(stored)), stored);
});

Deno.test("reviews_count: decimal, anything else reads as 0, 0 is not written", () => {
  const cases: [string, number][] = [
    ["", 0],
    ["0", 0],
    ["3", 3],
    ["+2", 2],
    ["-1", 0],
    ["x", 0],
    ["1.5", 0],
  ];
  for (const [stored, count] of cases) {
    assert.equal(decodePluginData({ reviews_count: stored }).reviewsCount, count, stored);
  }
  assert.deepEqual(encodePluginData(data({ reviewsCount: 0 })), {});
  assert.throws(() => encodePluginData(data({ reviewsCount: -1 })), RangeError);
  assert.throws(() => encodePluginData(data({ reviewsCount: 1.5 })), RangeError);
});

Deno.test("roles: comma-joined, empty means none", () => {
  assert.deepEqual(decodePluginData({ roles: "" }).roles, []);
  assert.deepEqual(decodePluginData({ roles: "a" }).roles, ["a"]);
  assert.deepEqual(decodePluginData({ roles: "a,b,c" }).roles, ["a", "b", "c"]);
  assert.equal(encodePluginData(data({ roles: [] })).roles, undefined);
});

Deno.test("legacy single-thread keys email + timestamp: one thread, first, without message id", () => {
  const decoded = decodePluginData({
    email: "old@example.com",
    timestamp: "2021-03-01 10:00:00 +0000 UTC",
    email_threads: "new@example.com/t/id@h",
  });
  assert.deepEqual(decoded.emailThreads, [
    { email: "old@example.com", timestamp: "2021-03-01 10:00:00 +0000 UTC", messageId: "" },
    { email: "new@example.com", timestamp: "t", messageId: "id@h" },
  ]);
  assert.deepEqual(decoded.extra, {});
  // Written back in the current format only, so the Go plugin does not read it twice.
  assert.deepEqual(encodePluginData(decoded), {
    email_threads: "old@example.com/2021-03-01 10:00:00 +0000 UTC/,new@example.com/t/id@h",
  });
});

Deno.test("a lone legacy key is no thread (as in Go) and is kept as an unknown key", () => {
  const cases: Record<string, string>[] = [{ email: "old@example.com" }, { timestamp: "t" }];
  for (const stored of cases) {
    const decoded = decodePluginData(stored);
    assert.deepEqual(decoded.emailThreads, []);
    assert.deepEqual(decoded.extra, stored);
    assert.deepEqual(encodePluginData(decoded), stored);
  }
});

Deno.test("email_threads entries: brackets stripped, malformed entries skipped", () => {
  const cases: [string, string, { email: string; timestamp: string; messageId: string }[]][] = [
    ["brackets", "a@x/t/<id@h>", [{ email: "a@x", timestamp: "t", messageId: "id@h" }]],
    ["double brackets", "a@x/t/<<id@h>>", [{ email: "a@x", timestamp: "t", messageId: "id@h" }]],
    ["empty message id", "a@x/t/", [{ email: "a@x", timestamp: "t", messageId: "" }]],
    ["two parts", "a@x/t", []],
    ["one part", "a@x", []],
    ["empty entries", ",,a@x/t/m,", [{ email: "a@x", timestamp: "t", messageId: "m" }]],
    ["no address", "/t/m", []],
    ["slash in the address", "a/b@x/t/m", [{ email: "a/b@x", timestamp: "t", messageId: "m" }]],
  ];
  for (const [name, stored, threads] of cases) {
    assert.deepEqual(decodePluginData({ email_threads: stored }).emailThreads, threads, name);
  }
});

Deno.test("encodePluginData refuses threads the format cannot carry", () => {
  const bad: [string, { email: string; timestamp: string; messageId: string }][] = [
    ["comma in address", { email: "a,b@x", timestamp: "t", messageId: "m" }],
    ["empty address", { email: "", timestamp: "t", messageId: "m" }],
    ["slash in timestamp", { email: "a@x", timestamp: "2026/11/22", messageId: "m" }],
    ["comma in timestamp", { email: "a@x", timestamp: "Sun, 22 Nov", messageId: "m" }],
    ["slash in message id", { email: "a@x", timestamp: "t", messageId: "a/b@x" }],
  ];
  for (const [name, thread] of bad) {
    assert.throws(() => encodePluginData(data({ emailThreads: [thread] })), RangeError, name);
  }
  assert.equal(
    encodePluginData(data({ emailThreads: [{ email: "a@x", timestamp: "t", messageId: "<m@x>" }] }))
      .email_threads,
    "a@x/t/m@x",
    "message ids are stored without brackets",
  );
});

Deno.test("unknown keys round-trip; they cannot override the Go plugin's keys", () => {
  const decoded = decodePluginData({ user: "u", claim: "host-1/2026", other: "x" });
  assert.deepEqual(decoded.extra, { claim: "host-1/2026", other: "x" });
  assert.deepEqual(encodePluginData(decoded), { user: "u", claim: "host-1/2026", other: "x" });
  assert.deepEqual(encodePluginData(data({ user: "u", extra: { user: "evil", z: "" } })), {
    user: "u",
  });
});

Deno.test("formatThreadTimestamp writes Go's time.Time.String() of a UTC time", () => {
  const cases: [string, string][] = [
    ["2026-11-22T10:00:00.500Z", "2026-11-22 10:00:00.5 +0000 UTC"],
    ["2026-11-22T10:00:01.000Z", "2026-11-22 10:00:01 +0000 UTC"],
    ["2026-01-02T03:04:05.123Z", "2026-01-02 03:04:05.123 +0000 UTC"],
    ["2026-01-02T03:04:05.120Z", "2026-01-02 03:04:05.12 +0000 UTC"],
  ];
  for (const [iso, text] of cases) assert.equal(formatThreadTimestamp(new Date(iso)), text);
});

Deno.test("parseThreadTimestamp reads Go's text (with monotonic reading, any zone) and RFC 3339", () => {
  const cases: [string, string | undefined][] = [
    ["2026-11-22 10:00:00.5 +0000 UTC m=+1.0", "2026-11-22T10:00:00.500Z"],
    ["2026-11-22 10:00:01 +0000 UTC", "2026-11-22T10:00:01.000Z"],
    ["2026-11-22 11:00:01.123456789 +0100 CET m=+0.000000001", "2026-11-22T10:00:01.123Z"],
    ["2026-11-22 05:30:00 -0430 -0430", "2026-11-22T10:00:00.000Z"],
    ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000Z"],
    ["2026-11-22T12:00:00+02:00", "2026-11-22T10:00:00.000Z"],
    ["0000001", undefined],
    ["", undefined],
  ];
  for (const [text, iso] of cases) {
    assert.equal(parseThreadTimestamp(text)?.toISOString(), iso, text);
  }
  const now = new Date("2026-11-22T10:00:00.250Z");
  assert.equal(parseThreadTimestamp(formatThreadTimestamp(now))?.getTime(), now.getTime());
});

Deno.test("bareMessageId strips surrounding angle brackets and spaces", () => {
  const cases: [string, string][] = [
    ["<a@b>", "a@b"],
    ["a@b", "a@b"],
    [" <a@b> ", "a@b"],
    ["<<a@b>>", "a@b"],
    ["", ""],
  ];
  for (const [stored, id] of cases) assert.equal(bareMessageId(stored), id);
});
