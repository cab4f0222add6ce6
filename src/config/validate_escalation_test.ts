/**
 * `[escalation]` and `[access_expiry]` (issue 15): defaults, the shapes
 * accepted (tables, inline tables, `[[escalation.levels]]`) and one clear
 * error per mistake, each naming its dotted key.
 */
import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { ConfigError, validateConfig } from "./validate.ts";
import type { LoadedConfig } from "./types.ts";
import { CONFIG_TEMPLATE } from "./template.ts";

const HOUR = 3_600_000;

const BASE = `[teleport]
identity = "/id"
[smtp]
host = "smtp.example.com"
[delivery]
sender = "noreply@example.com"
[role_to_recipients]
"*" = ["security@example.com"]
`;

const deps = { readTextFile: () => "secret" };

function accept(extra: string): LoadedConfig {
  return validateConfig(parse(`${BASE}\n${extra}`), deps);
}

function problemsOf(extra: string): readonly string[] {
  try {
    accept(extra);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

/** Levels as plain objects (role maps have a null prototype). */
function levelsOf(loaded: LoadedConfig) {
  return loaded.config.escalation?.levels.map((l) => ({
    ...l,
    roleToRecipients: { ...l.roleToRecipients },
  }));
}

Deno.test("[escalation] and [access_expiry] are off by default", () => {
  const { config, warnings } = accept("");
  assert.equal(config.escalation, undefined);
  assert.equal(config.accessExpiry, undefined);
  assert.deepEqual(warnings, []);
});

Deno.test("[escalation]: one level, per-role lists as a sub-table, further levels", () => {
  const loaded = accept(`[escalation]
after = "4h"
recipients = ["lead@example.com"]
[escalation.role_to_recipients]
dba = ["dba-lead@example.com", "dba-mgr@example.com"]
web = "web-lead@example.com"
[[escalation.levels]]
after = "24h"
recipients = "cto@example.com"
[[escalation.levels]]
after = "48h"
recipients = ["ceo@example.com"]
[escalation.levels.role_to_recipients]
dba = ["cio@example.com"]
`);
  assert.deepEqual(loaded.warnings, []);
  assert.deepEqual(levelsOf(loaded), [
    {
      afterMs: 4 * HOUR,
      recipients: ["lead@example.com"],
      roleToRecipients: {
        dba: ["dba-lead@example.com", "dba-mgr@example.com"],
        web: ["web-lead@example.com"],
      },
    },
    { afterMs: 24 * HOUR, recipients: ["cto@example.com"], roleToRecipients: {} },
    {
      afterMs: 48 * HOUR,
      recipients: ["ceo@example.com"],
      roleToRecipients: { dba: ["cio@example.com"] },
    },
  ]);
});

Deno.test("[escalation]: the template's commented keys, uncommented, validate", () => {
  const section = CONFIG_TEMPLATE.split("\n# [escalation]\n")[1]!.split("\n\n")[0]!;
  const active = section.split("\n").filter((l) => !l.startsWith("# #"))
    .map((l) => l.replace(/^# /, "")).join("\n");
  const expiry = CONFIG_TEMPLATE.split("\n# [access_expiry]\n")[1]!.split("\n\n")[0]!;
  const activeExpiry = expiry.split("\n").filter((l) => !l.startsWith("# #"))
    .map((l) => l.replace(/^# /, "")).join("\n");
  const loaded = accept(`[escalation]\n${active}\n[access_expiry]\n${activeExpiry}\n`);
  assert.deepEqual(loaded.warnings, []);
  assert.equal(loaded.config.escalation?.levels.length, 2);
  assert.deepEqual(loaded.config.accessExpiry, { warnBeforeMs: [24 * HOUR, HOUR] });
});

Deno.test("[escalation]: every mistake names its dotted key", async (t) => {
  const cases: Array<[string, string]> = [
    ['recipients = ["a@example.com"]', 'escalation.after: is required (e.g. "4h")'],
    [
      'after = "soon"\nrecipients = ["a@example.com"]',
      'escalation.after: invalid duration "soon": expected a number followed by a unit such as 1m or 30s',
    ],
    [
      'after = "0s"\nrecipients = ["a@example.com"]',
      'escalation.after: must be longer than zero, got "0s"',
    ],
    [
      'after = 4\nrecipients = ["a@example.com"]',
      'escalation.after: must be a duration string such as "1h", got an integer "4"',
    ],
    [
      'after = "4h"',
      "escalation.recipients: must list at least one email address (for roles without a list of their own)",
    ],
    [
      'after = "4h"\nrecipients = ["Lead <lead@example.com>"]',
      'escalation.recipients[0]: must be a plain email address (no display name or spaces), got "Lead <lead@example.com>"',
    ],
    [
      'after = "4h"\nrecipients = ["a@example.com"]\nrole_to_recipients = { dba = ["nope"] }',
      'escalation.role_to_recipients."dba"[0]: must be a plain email address (no display name or spaces), got "nope"',
    ],
    [
      'after = "4h"\nrecipients = ["a@example.com"]\nrole_to_recipients = "x@example.com"',
      'escalation.role_to_recipients: must be a table of role = addresses, got a string "x@example.com"',
    ],
    [
      'after = "4h"\nrecipients = ["a@example.com"]\nlevels = ["x"]',
      "escalation.levels: must be an array of tables ([[escalation.levels]]), got an array",
    ],
    [
      'after = "4h"\nrecipients = ["a@example.com"]\n[[escalation.levels]]\nafter = "4h"\nrecipients = ["b@example.com"]',
      "escalation.levels[0].after: must be later than escalation.after",
    ],
    [
      'after = "4h"\nrecipients = ["a@example.com"]\n[[escalation.levels]]\nafter = "8h"\nrecipients = ["b@example.com"]\n[[escalation.levels]]\nafter = "6h"\nrecipients = ["c@example.com"]',
      "escalation.levels[1].after: must be later than escalation.levels[0].after",
    ],
    [
      'after = "4h"\nrecipients = ["a@example.com"]\n[[escalation.levels]]\nrecipients = ["b@example.com"]',
      'escalation.levels[0].after: is required (e.g. "4h")',
    ],
  ];
  for (const [body, problem] of cases) {
    await t.step(problem, () => {
      assert.deepEqual(problemsOf(`[escalation]\n${body}\n`), [problem]);
    });
  }
  await t.step("unknown keys are warned about with a guess", () => {
    const { warnings } = accept(
      '[escalation]\nafter = "4h"\nrecipients = ["a@example.com"]\nrecipient = 1\n' +
        '[[escalation.levels]]\nafter = "8h"\nrecipients = ["b@example.com"]\naftr = "1h"\n',
    );
    assert.deepEqual(warnings, [
      "escalation.recipient: unknown key, ignored (did you mean escalation.recipients?)",
      "escalation.levels[0].aftr: unknown key, ignored (did you mean escalation.levels[0].after?)",
    ]);
  });
});

Deno.test("[access_expiry]: warn_before, longest first, each once", async (t) => {
  await t.step("accepted", () => {
    const { config, warnings } = accept('[access_expiry]\nwarn_before = ["1h", "24h", "30m"]');
    assert.deepEqual(config.accessExpiry, { warnBeforeMs: [24 * HOUR, HOUR, HOUR / 2] });
    assert.deepEqual(warnings, []);
  });
  await t.step("a duration twice is warned about and kept once", () => {
    const { config, warnings } = accept('[access_expiry]\nwarn_before = ["1h", "60m"]');
    assert.deepEqual(config.accessExpiry, { warnBeforeMs: [HOUR] });
    assert.deepEqual(warnings, ["access_expiry.warn_before: lists a duration twice; sent once"]);
  });
  const cases: Array<[string, string]> = [
    ["", 'access_expiry.warn_before: is required in [access_expiry] (e.g. ["24h", "1h"])'],
    [
      "warn_before = []",
      'access_expiry.warn_before: must be a non-empty array of duration strings such as ["24h", "1h"], got an array',
    ],
    [
      'warn_before = "1h"',
      'access_expiry.warn_before: must be a non-empty array of duration strings such as ["24h", "1h"], got a string "1h"',
    ],
    [
      'warn_before = ["24h", "-1h"]',
      'access_expiry.warn_before[1]: invalid duration "-1h": must not be negative',
    ],
    [
      'warn_before = ["0s"]',
      'access_expiry.warn_before[0]: must be longer than zero, got "0s"',
    ],
  ];
  for (const [body, problem] of cases) {
    await t.step(problem, () => {
      assert.deepEqual(problemsOf(`[access_expiry]\n${body}\n`), [problem]);
    });
  }
});
