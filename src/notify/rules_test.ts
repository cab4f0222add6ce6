/**
 * The rule set that routes email notifications: which rules concern us, how
 * matching rules combine, and that a broken rule is reported once and never
 * stops the others. The same rules travel over gRPC in
 * tests/routing_e2e_test.ts.
 */
import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { concernsEmail, RuleSet } from "./rules.ts";
import { routeRecipients } from "./recipients.ts";
import type { AccessMonitoringRule, AccessRequest } from "../teleport/types.ts";
import { newAccessRequest } from "../../tests/requests.ts";

interface LogCall {
  level: string;
  message: string;
  props: Record<string, unknown>;
}

/** A logger that records what the rule set says (only the methods it may call). */
function recordingLogger(): { log: Logger; calls: LogCall[] } {
  const calls: LogCall[] = [];
  const at = (level: string) => (message: string, props: Record<string, unknown> = {}) => {
    calls.push({ level, message, props });
  };
  const log = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    with: () => log,
    getChild: () => log,
  };
  return { log: log as unknown as Logger, calls };
}

function request(patch: Partial<AccessRequest> = {}): AccessRequest {
  return newAccessRequest("req-1", { roles: ["dba"], ...patch });
}

function rule(
  name: string,
  condition: string,
  recipients: string[],
  patch: Partial<AccessMonitoringRule> = {},
): AccessMonitoringRule {
  return {
    name,
    revision: "r1",
    subjects: ["access_request"],
    states: [],
    condition,
    notification: { name: "email", recipients },
    ...patch,
  };
}

const DBA = 'access_request.spec.roles.contains("dba")';
const DEV = 'access_request.spec.roles.contains("dev")';

Deno.test("concernsEmail: subject access_request and notification email, nothing else", () => {
  const cases: [string, Partial<AccessMonitoringRule>, boolean][] = [
    ["ours", {}, true],
    ["several subjects", { subjects: ["access_list", "access_request"] }, true],
    ["another subject", { subjects: ["access_list"] }, false],
    ["no subject", { subjects: [] }, false],
    ["another plugin", { notification: { name: "slack", recipients: ["#dba"] } }, false],
    ["no notification", { notification: { name: "", recipients: [] } }, false],
    ["plugin name in another case", { notification: { name: "Email", recipients: [] } }, false],
  ];
  for (const [what, patch, want] of cases) {
    assert.equal(concernsEmail(rule("r", DBA, ["a@example.com"], patch)), want, what);
  }
});

Deno.test("recipientsFor: no rule, or no matching rule, leaves routing to the role map", () => {
  const { log } = recordingLogger();
  const rules = new RuleSet(log);
  assert.equal(rules.recipientsFor(request()), undefined, "empty set");
  rules.put(rule("dev", DEV, ["dev-team@example.com"]));
  assert.equal(rules.recipientsFor(request({ roles: ["dba"] })), undefined, "no match");
});

Deno.test("recipientsFor: union of matching rules in name order, each address once", () => {
  const { log, calls } = recordingLogger();
  const rules = new RuleSet(log);
  // Put out of name order: the result must not depend on arrival order.
  rules.put(rule("c-dev", DEV, ["dev-team@example.com", "shared@example.com"]));
  rules.put(rule("a-dba", DBA, ["dba-team@example.com", "shared@example.com"]));
  rules.put(rule("b-never", "false", ["never@example.com"]));
  rules.put(
    rule("d-dba-too", DBA, ["#dba-channel", "dba-team@example.com", "Ops <ops@example.com>"]),
  );
  const routed = rules.recipientsFor(request({ roles: ["dev", "dba"] }));
  assert.deepEqual(routed, {
    recipients: ["dba-team@example.com", "shared@example.com", "dev-team@example.com"],
    dropped: ["#dba-channel", "Ops <ops@example.com>"],
    rules: ["a-dba", "c-dev", "d-dba-too"],
  });
  assert.deepEqual(rules.recipientsFor(request({ roles: ["dev"] }))?.recipients, [
    "dev-team@example.com",
    "shared@example.com",
  ]);
  assert.deepEqual(calls, [], "nothing to report");
});

Deno.test("recipientsFor: a matching rule without a usable address is reported (the app falls back)", () => {
  const { log } = recordingLogger();
  const rules = new RuleSet(log);
  rules.put(rule("slack-ish", DBA, ["#dba"]));
  assert.deepEqual(rules.recipientsFor(request()), {
    recipients: [],
    dropped: ["#dba"],
    rules: ["slack-ish"],
  });
});

Deno.test("recipientsFor: a rule that a request makes too costly counts as matching, and the role map's recipients are added (no request steers itself away from anyone)", () => {
  const { log, calls } = recordingLogger();
  const rules = new RuleSet(log);
  // Requests that suggest a reviewer outside example.com go to security; dev requests to dev.
  rules.put(rule(
    "external-reviewer",
    String.raw`regexp.match(access_request.spec.suggested_reviewers, "^.*@(?:[^e].*|e[^x].*)$")`,
    ["security@example.com"],
  ));
  rules.put(rule("dev", DEV, ["dev@example.com"]));
  const roleMap = { "*": ["ops@example.com"] };
  const route = (n: number) => {
    const suggestedReviewers = [
      ...Array.from({ length: n }, (_, i) => `colleague-${i}-xxxxxxxxxxxxxxxx@example.com`),
      "friend@gmail.com",
    ];
    const r = request({ roles: ["dev"], suggestedReviewers });
    return routeRecipients(r, rules.recipientsFor(r), roleMap).recipients;
  };
  assert.deepEqual(route(10), ["dev@example.com", "security@example.com"]);
  assert.equal(calls.length, 0);
  // ~230 KB of suggested reviewers: more than one evaluation's steps.
  // The role map's routing as without rules: its list, then the suggested reviewers (the app
  // caps the count with delivery.max_recipients).
  const many = route(5000);
  assert.deepEqual(many.slice(0, 3), [
    "dev@example.com",
    "security@example.com",
    "ops@example.com",
  ]);
  assert.equal(many.length, 3 + 5001);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.level, "warn");
  assert.match(calls[0]!.message, /cost bound/);
  assert.equal(calls[0]!.props.rule, "external-reviewer");
});

Deno.test("recipientsFor: a rule reading user traits uses them when given", () => {
  const { log } = recordingLogger();
  const rules = new RuleSet(log);
  rules.put(rule("team", 'contains_any(user.traits["team"], set("dba"))', ["t@example.com"]));
  assert.equal(rules.recipientsFor(request(), { team: ["dev"] }), undefined);
  assert.deepEqual(rules.recipientsFor(request(), { team: ["dba"] })?.recipients, [
    "t@example.com",
  ]);
});

Deno.test("put: a broken condition is logged once per revision and skipped", () => {
  const { log, calls } = recordingLogger();
  const rules = new RuleSet(log);
  rules.put(rule("good", DBA, ["dba-team@example.com"]));
  const broken = rule("broken", 'access_request.spec.roles.contains("dba"', ["x@example.com"]);
  rules.put(broken);
  rules.put(broken); // the same revision again (e.g. re-listed after a reconnect)
  rules.replaceAll([rule("good", DBA, ["dba-team@example.com"]), broken]);
  assert.equal(calls.length, 1, JSON.stringify(calls));
  assert.equal(calls[0]!.level, "error");
  assert.match(calls[0]!.message, /is skipped/);
  assert.equal(calls[0]!.props.rule, "broken");
  assert.match(String(calls[0]!.props.error), /Cannot parse condition/);
  assert.equal(rules.size, 1, "only the good rule is kept");
  assert.deepEqual(rules.recipientsFor(request())?.rules, ["good"], "the good rule still routes");

  // A new revision of the broken rule, still broken: reported again, once.
  rules.put({ ...broken, revision: "r2" });
  rules.put({ ...broken, revision: "r2" });
  assert.equal(calls.length, 2);

  // A type error is a parse-time error too: reported, skipped.
  rules.put(rule("typed", 'access_request.spec.roles == "dba"', ["y@example.com"]));
  assert.equal(calls.length, 3);
  assert.equal(calls[2]!.props.rule, "typed");
  assert.equal(rules.size, 1);
});

Deno.test("put: a good rule changed to a broken condition stops routing", () => {
  const { log, calls } = recordingLogger();
  const rules = new RuleSet(log);
  rules.put(rule("dba", DBA, ["dba-team@example.com"]));
  assert.ok(rules.recipientsFor(request()));
  rules.put(rule("dba", "roles ==", ["dba-team@example.com"], { revision: "r2" }));
  assert.equal(rules.recipientsFor(request()), undefined);
  assert.equal(calls.length, 1);
});

Deno.test("put, delete, replaceAll keep the set current", () => {
  const { log } = recordingLogger();
  const rules = new RuleSet(log);
  rules.put(rule("dba", DBA, ["dba-team@example.com"]));
  assert.equal(rules.size, 1);

  // Changed recipients replace the old ones.
  rules.put(rule("dba", DBA, ["dba-oncall@example.com"], { revision: "r2" }));
  assert.equal(rules.size, 1);
  assert.deepEqual(rules.recipientsFor(request())?.recipients, ["dba-oncall@example.com"]);

  // A rule changed to another plugin is no longer ours.
  rules.put(rule("dba", DBA, ["#dba"], { notification: { name: "slack", recipients: ["#dba"] } }));
  assert.equal(rules.size, 0);
  assert.equal(rules.recipientsFor(request()), undefined);

  rules.put(rule("dba", DBA, ["dba-team@example.com"]));
  rules.delete("dba");
  rules.delete("never-existed");
  assert.equal(rules.size, 0);
  assert.equal(rules.recipientsFor(request()), undefined);

  rules.put(rule("old", DBA, ["old@example.com"]));
  rules.replaceAll([
    rule("new", DBA, ["new@example.com"]),
    rule("slack", DBA, [], { notification: { name: "slack", recipients: [] } }),
    rule("list", DBA, [], { subjects: ["access_list"] }),
  ]);
  assert.equal(rules.size, 1);
  assert.deepEqual(rules.recipientsFor(request()), {
    recipients: ["new@example.com"],
    dropped: [],
    rules: ["new"],
  });
  rules.replaceAll([]);
  assert.equal(rules.size, 0);
});

Deno.test("replaceAll: changes seen on the watch while listing are not undone by the list", () => {
  const { log } = recordingLogger();
  const rules = new RuleSet(log);
  rules.put(rule("gone", DBA, ["gone@example.com"]));
  rules.put(rule("kept", DEV, ["dev@example.com"]));

  const mark = rules.mark();
  // While the list is on its way, the watch says: "added" was created,
  // "gone" deleted, "kept" changed.
  rules.put(rule("added", DBA, ["added@example.com"]));
  rules.delete("gone");
  rules.put(rule("kept", DEV, ["dev-v2@example.com"], { revision: "r2" }));
  // The list was answered before those changes.
  rules.replaceAll([
    rule("gone", DBA, ["gone@example.com"]),
    rule("kept", DEV, ["dev@example.com"]),
    rule("listed", DEV, ["listed@example.com"]),
  ], mark);

  assert.deepEqual(rules.recipientsFor(request({ roles: ["dba", "dev"] })), {
    recipients: ["added@example.com", "dev-v2@example.com", "listed@example.com"],
    dropped: [],
    rules: ["added", "kept", "listed"],
  });

  // Without a mark the list is the whole truth.
  rules.replaceAll([rule("listed", DEV, ["listed@example.com"])]);
  assert.deepEqual(rules.recipientsFor(request({ roles: ["dba", "dev"] }))?.rules, ["listed"]);
});
