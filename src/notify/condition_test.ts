import assert from "node:assert/strict";
import {
  type ConditionEnv,
  evaluateCondition,
  MAX_CONDITION_LENGTH,
  MAX_EVALUATION_STEPS,
  MAX_NESTING_DEPTH,
  MAX_REGEXP_SIZE,
  parseCondition,
} from "./condition.ts";
import type { AccessRequest } from "../teleport/types.ts";
import { conditionError, conditionTester } from "./condition/_testing.ts";

const REQUEST: AccessRequest = {
  id: "0193b2c4-request",
  user: "alice",
  roles: ["dba", "dev"],
  state: "PENDING",
  created: new Date("2024-05-01T10:00:00Z"),
  expires: new Date("2024-05-01T11:00:00Z"),
  requestReason: 'incident INC-42: need "db" access',
  resolveReason: "",
  systemAnnotations: { env: ["prod", "staging"], "pagerduty-services": ["db-oncall"] },
  reviews: [],
  suggestedReviewers: ["bob@example.com"],
  requestedResources: [],
  loginHint: "",
};

const TRAITS = { team: ["dba", "sre"], "github-teams": ["core"] };

const ENV: ConditionEnv = { request: REQUEST, userTraits: TRAITS };

/** REQUEST without its creation time. */
const { created: _created, ...UNDATED } = REQUEST;

const { matches, table } = conditionTester(ENV);

Deno.test("the rule from the wire routes dba requests", () => {
  // tests/fixtures/teleport-wire/event_put_amr.txt, rule "route-dba".
  const cond = parseCondition('access_request.spec.roles.contains("dba")');
  assert.equal(cond.source, 'access_request.spec.roles.contains("dba")');
  assert.equal(evaluateCondition(cond, ENV), true);
  assert.equal(evaluateCondition(cond, { request: { ...REQUEST, roles: ["dev"] } }), false);
});

Deno.test("the examples of Teleport's access monitoring rule reference", () => {
  table([
    { condition: "!is_empty(access_request.spec.roles)", matches: true },
    {
      condition: "!is_empty(access_request.spec.roles)",
      env: { request: { ...REQUEST, roles: [] } },
      matches: false,
    },
    { condition: 'access_request.spec.user == "alice"', matches: true },
    { condition: 'access_request.spec.roles.contains("example_role")', matches: false },
    {
      condition: 'set("dba", "dev", "ops").contains_all(access_request.spec.roles)',
      matches: true,
    },
    { condition: 'set("dba", "ops").contains_all(access_request.spec.roles)', matches: false },
    { condition: 'contains_any(user.traits["team"], set("dev", "sre"))', matches: true },
    { condition: 'contains_all(set("access"), access_request.spec.roles)', matches: false },
    { condition: 'contains_any(access_request.spec.roles, set("access"))', matches: false },
  ]);
});

Deno.test("&&, || and ! follow boolean logic", () => {
  table([
    { condition: "true && true", matches: true },
    { condition: "true && false", matches: false },
    { condition: "false && true", matches: false },
    { condition: "false || true", matches: true },
    { condition: "true || false", matches: true },
    { condition: "false || false", matches: false },
    { condition: "!false", matches: true },
    { condition: "!true", matches: false },
    { condition: "!!true", matches: true },
    { condition: "true && true && true && false", matches: false },
    { condition: "false || false || false || true", matches: true },
  ]);
});

Deno.test("== and != compare strings and integers", () => {
  table([
    { condition: 'access_request.spec.user == "alice"', matches: true },
    { condition: 'access_request.spec.user == "Alice"', matches: false },
    { condition: 'access_request.spec.user != "bob"', matches: true },
    { condition: 'access_request.spec.user != "alice"', matches: false },
    { condition: '"alice" == access_request.spec.user', matches: true },
    {
      condition: 'access_request.spec.request_reason == "incident INC-42: need \\"db\\" access"',
      matches: true,
    },
    { condition: 'access_request.spec.request_reason != ""', matches: true },
    {
      condition: 'access_request.spec.request_reason == ""',
      env: { request: { ...REQUEST, requestReason: "" } },
      matches: true,
    },
    { condition: "1 == 1", matches: true },
    { condition: "1 != 1", matches: false },
    { condition: "010 == 10", matches: true }, // strconv.Atoi reads Go's octal-looking literal as decimal
  ]);
});

Deno.test("precedence: ! before ==/!=, before &&, before ||", () => {
  table([
    // || binds loosest: true || (true && false), not (true || true) && false.
    { condition: "true || true && false", matches: true },
    // false && false || true is (false && false) || true, not false && (false || true).
    { condition: "false && false || true", matches: true },
    // ! applies to its operand only: (!false) && false, not !(false && false).
    { condition: "!false && false", matches: false },
    // == binds tighter than &&: ("alice" == user) && ("bob" != user).
    {
      condition: 'access_request.spec.user == "alice" && access_request.spec.user != "bob"',
      matches: true,
    },
    // == binds tighter than ||.
    {
      condition: 'access_request.spec.user == "bob" || access_request.spec.user == "alice"',
      matches: true,
    },
    { condition: '!(access_request.spec.user == "bob")', matches: true },
  ]);
  // And ! binds tighter than ==: `!user == "bob"` is (!user) == "bob", a type error.
  const error = conditionError(() => parseCondition('!access_request.spec.user == "bob"'));
  assert.equal(error.column, 2);
  assert.match(error.reason, /^"!" needs a boolean, but access_request\.spec\.user is a string$/);
  // (!true) == false: Teleport's == does not compare booleans.
  assert.match(
    conditionError(() => parseCondition("!true == false")).reason,
    /^"==" compares strings or integers, but !true is a boolean$/,
  );
});

Deno.test("parentheses group, however deeply nested", () => {
  table([
    { condition: "(true || true) && false", matches: false },
    { condition: "false && (false || true)", matches: false },
    { condition: "!(false && false)", matches: true },
    { condition: "((true || false) && (false || (true && !false)))", matches: true },
    { condition: '(((access_request.spec.roles.contains("dev"))))', matches: true },
    { condition: '(access_request.spec.roles).contains("dba")', matches: true },
    {
      condition: "(".repeat(MAX_NESTING_DEPTH) + "true" + ")".repeat(MAX_NESTING_DEPTH),
      matches: true,
    },
  ]);
});

Deno.test("&& and || stop at the first deciding operand", () => {
  // The right side would fail at run time: the reason is not a time.
  const failing =
    "time.RFC3339(access_request.spec.request_reason).before(access_request.spec.expiry)";
  table([
    { condition: `false && ${failing}`, matches: false },
    { condition: `true || ${failing}`, matches: true },
  ]);
  for (const condition of [`true && ${failing}`, `false || ${failing}`]) {
    const error = conditionError(() => matches(condition));
    assert.match(error.message, /^Cannot evaluate condition /, condition);
  }
});

Deno.test("contains is a method on sets", () => {
  table([
    { condition: 'access_request.spec.roles.contains("dev")', matches: true },
    { condition: 'access_request.spec.roles.contains("DBA")', matches: false },
    {
      condition: 'access_request.spec.suggested_reviewers.contains("bob@example.com")',
      matches: true,
    },
    { condition: 'set("a", "b").contains("b")', matches: true },
    { condition: 'set().contains("")', matches: false },
    { condition: 'user.traits["team"].contains("sre")', matches: true },
    { condition: 'user.traits.team.contains("sre")', matches: true },
    { condition: 'access_request.spec.system_annotations["env"].contains("prod")', matches: true },
    { condition: "access_request.spec.roles.contains(access_request.spec.user)", matches: false },
  ]);
  // Teleport registers contains only as a method; we also accept the function form.
  table([
    { condition: 'contains(access_request.spec.roles, "dba")', matches: true },
    { condition: 'contains(access_request.spec.roles, "ops")', matches: false },
    { condition: 'contains(set("a"), "a") && !contains(set("a"), "b")', matches: true },
  ]);
  const error = conditionError(() => parseCondition('contains(access_request.spec.user, "x")'));
  assert.match(error.reason, /contains/);
});

Deno.test("contains_any and contains_all, as functions and as methods", () => {
  table([
    { condition: 'contains_any(access_request.spec.roles, set("ops", "dev"))', matches: true },
    { condition: 'contains_any(access_request.spec.roles, set("ops", "sec"))', matches: false },
    { condition: 'access_request.spec.roles.contains_any(set("dba"))', matches: true },
    { condition: 'contains_all(access_request.spec.roles, set("dba", "dev"))', matches: true },
    { condition: 'contains_all(access_request.spec.roles, set("dba", "ops"))', matches: false },
    { condition: 'access_request.spec.roles.contains_all(set("dev"))', matches: true },
    // Empty item sets match nothing, for both.
    { condition: "contains_any(access_request.spec.roles, set())", matches: false },
    { condition: "contains_all(access_request.spec.roles, set())", matches: false },
    { condition: "set().contains_all(set())", matches: false },
    { condition: 'contains_all(set("dba", "dba"), set("dba"))', matches: true },
  ]);
});

Deno.test("set helpers: set, union, add, remove, is_empty, isempty", () => {
  table([
    { condition: 'union(access_request.spec.roles, set("ops")).contains("ops")', matches: true },
    { condition: 'union(access_request.spec.roles, set("ops")).contains("dba")', matches: true },
    { condition: 'access_request.spec.roles.add("ops").contains("ops")', matches: true },
    { condition: 'access_request.spec.roles.remove("dba").contains("dba")', matches: false },
    { condition: 'access_request.spec.roles.remove("dba").contains("dev")', matches: true },
    { condition: "is_empty(set())", matches: true },
    { condition: 'set("x").isempty()', matches: false },
    { condition: 'set(access_request.spec.user).contains("alice")', matches: true },
  ]);
});

Deno.test("system annotations and traits are maps of sets; a missing key is the empty set", () => {
  table([
    {
      condition: 'access_request.spec.system_annotations["env"].contains("staging")',
      matches: true,
    },
    { condition: 'access_request.spec.system_annotations.env.contains("prod")', matches: true },
    {
      condition:
        'access_request.spec.system_annotations["pagerduty-services"].contains("db-oncall")',
      matches: true,
    },
    { condition: 'is_empty(access_request.spec.system_annotations["missing"])', matches: true },
    { condition: 'access_request.spec.system_annotations["missing"].contains("")', matches: false },
    { condition: 'user.traits["github-teams"].contains("core")', matches: true },
    { condition: 'is_empty(user.traits["missing"])', matches: true },
    { condition: 'user.traits[access_request.spec.user].contains("x")', matches: false },
    // Without traits from the server every trait is empty.
    {
      condition: 'is_empty(user.traits["team"])',
      env: { request: REQUEST },
      matches: true,
    },
    {
      condition: 'contains_any(user.traits["team"], set("sre"))',
      env: { request: REQUEST },
      matches: false,
    },
    // Keys are looked up as data, never as object properties.
    { condition: 'is_empty(user.traits["__proto__"])', matches: true },
    { condition: 'is_empty(user.traits["constructor"])', matches: true },
  ]);
});

Deno.test("string literals are Go strings: escapes and backquoted raw strings", () => {
  table([
    { condition: '"\\u0061lice" == access_request.spec.user', matches: true },
    { condition: '"\\x61lice" == access_request.spec.user', matches: true },
    { condition: '"\\141lice" == access_request.spec.user', matches: true },
    { condition: '"\\U00000061lice" == access_request.spec.user', matches: true },
    { condition: '"\\xc3\\xa9" == "é"', matches: true },
    { condition: '"tab\\there" == "tab\there"', matches: true },
    { condition: "`alice` == access_request.spec.user", matches: true },
    { condition: '`a\\nb` == "a\\\\nb"', matches: true },
    { condition: '`line1\nline2` == "line1\\nline2"', matches: true },
    { condition: '`x\r\ny` == "x\\ny"', matches: true }, // carriage returns are dropped from raw strings
    { condition: '"😀" == "\\U0001F600"', matches: true },
  ]);
});

Deno.test("times: creation_time and expiry compare with before, after and between", () => {
  table([
    {
      condition: 'access_request.spec.creation_time.after(time.RFC3339("2024-01-01T00:00:00Z"))',
      matches: true,
    },
    {
      condition: 'access_request.spec.creation_time.before(time.RFC3339("2024-01-01T00:00:00Z"))',
      matches: false,
    },
    {
      condition: "after(access_request.spec.expiry, access_request.spec.creation_time)",
      matches: true,
    },
    // 12:00+01:00 is 11:00Z, the expiry itself: before and after are strict.
    {
      condition: 'access_request.spec.expiry.before(time.RFC3339("2024-05-01T12:00:00+01:00"))',
      matches: false,
    },
    {
      condition: 'access_request.spec.expiry.before(time.RFC3339("2024-05-01T12:00:00.001+01:00"))',
      matches: true,
    },
    {
      condition: "access_request.spec.creation_time.between(" +
        'time.RFC3339("2024-05-01T09:00:00Z"), time.RFC3339("2024-05-01T10:30:00Z"))',
      matches: true,
    },
    // The interval's ends may come in either order, and are excluded.
    {
      condition: "between(access_request.spec.creation_time, " +
        'time.RFC3339("2024-05-01T10:30:00Z"), time.RFC3339("2024-05-01T09:00:00Z"))',
      matches: true,
    },
    {
      condition: "access_request.spec.creation_time.between(" +
        'time.RFC3339("2024-05-01T10:00:00Z"), time.RFC3339("2024-05-01T11:00:00Z"))',
      matches: false,
    },
    // An unset time is Go's zero time, 0001-01-01T00:00:00Z.
    {
      condition: 'access_request.spec.creation_time.before(time.RFC3339("0001-01-01T00:00:01Z"))',
      env: { request: UNDATED },
      matches: true,
    },
    // Expiry is the resource expiry when the request has one.
    {
      condition: 'access_request.spec.expiry.after(time.RFC3339("2024-06-01T00:00:00Z"))',
      env: { request: { ...REQUEST, resourceExpiry: new Date("2024-07-01T00:00:00Z") } },
      matches: true,
    },
  ]);
});

Deno.test("regexp.match: globs, and regular expressions wrapped in ^…$", () => {
  table([
    { condition: 'regexp.match(set(access_request.spec.request_reason), "*INC-*")', matches: true },
    { condition: 'regexp.match(set(access_request.spec.request_reason), "INC-*")', matches: false },
    {
      condition:
        'regexp.match(set(access_request.spec.request_reason), "^incident INC-[0-9]+:.*$")',
      matches: true,
    },
    { condition: 'regexp.match(access_request.spec.roles, "d?a")', matches: false }, // only * is a wildcard
    { condition: 'regexp.match(set("a.b"), "a.b")', matches: true },
    { condition: 'regexp.match(set("axb"), "a.b")', matches: false }, // a glob's "." is literal
    { condition: 'regexp.match(set("axb"), "^a.b$")', matches: true },
    { condition: 'regexp.match(set("dev-team"), "^(?P<kind>dev)-team$")', matches: true },
    { condition: 'regexp.match(set(), "*")', matches: false },
  ]);
});

Deno.test("strings helpers map each character like Go", () => {
  table([
    { condition: 'strings.lower("ALICE") == access_request.spec.user', matches: true },
    { condition: 'strings.upper(access_request.spec.roles).contains("DBA")', matches: true },
    { condition: 'strings.upper("straße") == "STRAßE"', matches: true },
    { condition: 'strings.lower("İ") == "i"', matches: true },
    {
      condition: 'strings.replaceall(access_request.spec.user, "l", "L") == "aLice"',
      matches: true,
    },
    { condition: 'strings.replaceall("ab", "", "-") == "-a-b-"', matches: true },
    { condition: 'strings.replaceall("a", "a", "$&$&") == "$&$&"', matches: true },
    { condition: 'strings.split(set("a,b"), ",").contains_all(set("a", "b"))', matches: true },
  ]);
});

Deno.test("line breaks and comments follow Go's rules", () => {
  table([
    { condition: "true &&\n  false", matches: false },
    { condition: "true\n", matches: true },
    {
      condition: 'contains_all(set("dba"), access_request.spec.roles) ||\n' +
        'contains_any(user.traits["team"], set("dba"))',
      matches: true,
    },
    { condition: 'set(\n  "a",\n).contains("a")', matches: true },
    { condition: "true /* always */ && true // the end", matches: true },
  ]);
});

Deno.test("a parsed condition is reusable across requests", () => {
  const cond = parseCondition('access_request.spec.user == "alice"');
  assert.equal(evaluateCondition(cond, ENV), true);
  assert.equal(evaluateCondition(cond, { request: { ...REQUEST, user: "bob" } }), false);
  assert.equal(evaluateCondition(cond, ENV), true);
  assert.ok(Object.isFrozen(cond));
});

Deno.test("malformed conditions are refused with what is wrong and where", () => {
  const cases: { condition: string; column: number; line?: number; reason: string | RegExp }[] = [
    { condition: "", column: 1, reason: "the condition is empty" },
    { condition: "  \t ", column: 1, reason: "the condition is empty" },
    {
      condition: 'access_request.spec.user == "alice',
      column: 29,
      reason: 'string is never closed: a closing " is missing',
    },
    { condition: "`alice", column: 1, reason: "string is never closed: a closing ` is missing" },
    { condition: "(true && false", column: 1, reason: '"(" is never closed' },
    {
      condition: 'user.traits["team").contains("x")',
      column: 19,
      reason: 'expected "]" to close the "[" at column 12, found ")"',
    },
    {
      condition: 'user.traits["team".contains("x")',
      column: 12,
      reason: '"[" is never closed',
    },
    { condition: "true)", column: 5, reason: 'unexpected ")" without a matching "("' },
    { condition: "((true)", column: 1, reason: '"(" is never closed' },
    {
      condition: "true &&",
      column: 8,
      reason: 'expected an operand after "&&", found the end of the condition',
    },
    {
      condition: "true || ",
      column: 9,
      reason: 'expected an operand after "||", found the end of the condition',
    },
    {
      condition: "access_request.spec.user ==",
      column: 28,
      reason: 'expected an operand after "==", found the end of the condition',
    },
    {
      condition: "!",
      column: 2,
      reason: 'expected an operand after "!", found the end of the condition',
    },
    {
      condition: "()",
      column: 1,
      reason: 'empty parentheses: an expression is missing between "(" and ")"',
    },
    { condition: "true && ()", column: 9, reason: /^empty parentheses/ },
    {
      condition: "user.traits[]",
      column: 12,
      reason: 'empty brackets: a key such as ["team"] is missing',
    },
    { condition: "true @ false", column: 6, reason: 'unexpected character "@"' },
    { condition: "true && #", column: 9, reason: 'unexpected character "#"' },
    { condition: "true\u00a0&& true", column: 5, reason: "unexpected character U+00A0" },
    {
      condition: "access_request.spec.user == 'alice'",
      column: 29,
      reason: /^single quotes do not make a string/,
    },
    {
      condition: 'access_request.spec.user = "alice"',
      column: 26,
      reason: '"=" assigns; compare with "=="',
    },
    { condition: "true & false", column: 6, reason: '"&" is not supported; use "&&"' },
    {
      condition: "1 < 2",
      column: 3,
      reason: 'operator "<" is not supported (conditions use &&, ||, !, == and !=)',
    },
    {
      condition: "true false",
      column: 6,
      reason: 'unexpected name "false": an operator such as "&&" or "||" is missing before it',
    },
    {
      condition: "true\n&& false",
      line: 1,
      column: 5,
      reason: /^unexpected line break after name "true": in Go syntax a line ending/,
    },
    { condition: "true &&\n  bogus", line: 2, column: 3, reason: 'unknown name "bogus"' },
    { condition: '"\\q"', column: 2, reason: 'escape "\\q" is not valid in a Go string' },
    { condition: '"\\x4"', column: 2, reason: 'escape "\\x" needs 2 hexadecimal digits' },
    {
      condition: '"\\uD800"',
      column: 2,
      reason: 'escape "\\uD800" is not a valid Unicode code point',
    },
    {
      condition: '"\\xff" == "x"',
      column: 1,
      reason: "string is not valid UTF-8, so it can never match",
    },
    { condition: "0x10 == 16", column: 1, reason: /^number 0x10 is not supported/ },
    { condition: "1.5 == 1", column: 1, reason: /^number 1\.5 is not supported/ },
    { condition: "08 == 8", column: 1, reason: /^number 08 is not valid/ },
    {
      condition: "99999999999999999999 == 1",
      column: 1,
      reason: "number 99999999999999999999 is too large",
    },
    { condition: "true /* never closed", column: 6, reason: 'comment "/*" is never closed' },
    {
      condition: 'user.traits.type.contains("x")',
      column: 13,
      reason: '"type" is a Go keyword and cannot be a name; index a map with ["type"]',
    },
    {
      condition: "x" + " ".repeat(MAX_CONDITION_LENGTH),
      column: 1,
      reason: /^the condition is longer/,
    },
    {
      condition: "!".repeat(MAX_NESTING_DEPTH + 1) + "true",
      column: MAX_NESTING_DEPTH + 1,
      reason: `the condition nests deeper than ${MAX_NESTING_DEPTH} levels`,
    },
  ];
  for (const c of cases) {
    const error = conditionError(() => parseCondition(c.condition));
    assert.equal(error.column, c.column, `column of ${JSON.stringify(c.condition)}`);
    assert.equal(error.line, c.line ?? 1, `line of ${JSON.stringify(c.condition)}`);
    if (typeof c.reason === "string") assert.equal(error.reason, c.reason, c.condition);
    else assert.match(error.reason, c.reason, c.condition);
    assert.equal(error.source, c.condition);
  }
});

Deno.test("unknown fields and functions, and type mistakes, are refused when parsing", () => {
  const cases: { condition: string; column: number; reason: string | RegExp }[] = [
    {
      condition: 'access_request.spec.rolez.contains("dba")',
      column: 1,
      reason: /^unknown field "access_request\.spec\.rolez" \(known fields are /,
    },
    { condition: "access_request.spec.roles.contains", column: 1, reason: /^unknown field/ },
    { condition: 'user.name == "alice"', column: 1, reason: /^unknown field "user\.name"/ },
    {
      condition: 'access_request.spec.system_annotations.a.b.contains("x")',
      column: 1,
      reason: /^unknown field "access_request\.spec\.system_annotations\.a\.b"/,
    },
    { condition: "alice", column: 1, reason: 'unknown name "alice"' },
    { condition: "foo(1)", column: 1, reason: 'unknown function "foo"' },
    {
      condition: 'strings.title("a") == "A"',
      column: 1,
      reason: 'unknown function "strings.title"',
    },
    {
      condition: 'access_request.spec.roles.has("dba")',
      column: 27,
      reason: 'unknown method "has"',
    },
    // ifelse and resource_labels_union are supported now (see the builtins tests); what
    // Teleport refuses about them still is.
    {
      condition: 'ifelse("yes", "a", "b") == "a"',
      column: 8,
      reason: 'argument 1 of function "ifelse" must be a boolean, but "yes" is a string',
    },
    {
      condition: 'access_request.spec.resource_labels_union == "prod"',
      column: 43,
      reason:
        '"==" compares strings or integers, but access_request.spec.resource_labels_union is a map',
    },
    {
      condition: 'access_request.spec.user.contains("a")',
      column: 1,
      reason:
        'the receiver of method "contains" must be a set, but access_request.spec.user is a string',
    },
    {
      condition: 'contains_any(access_request.spec.roles, "dba")',
      column: 41,
      reason: 'argument 2 of function "contains_any" must be a set, but "dba" is a string',
    },
    {
      condition: "contains_any(access_request.spec.roles)",
      column: 1,
      reason: 'function "contains_any" takes 2 arguments, but 1 is given',
    },
    {
      condition: 'access_request.spec.roles.contains("a", "b")',
      column: 1,
      reason: 'method "contains" takes 1 argument, but 2 are given',
    },
    {
      condition: 'access_request.spec.roles == "dba"',
      column: 27,
      reason: '"==" compares strings or integers, but access_request.spec.roles is a set',
    },
    {
      condition: "access_request.spec.user == 1",
      column: 29,
      reason: 'the right side of "==" must be a string like the left side, but 1 is an integer',
    },
    {
      condition: "access_request.spec.user",
      column: 1,
      reason:
        "the condition must be a boolean (true or false), but access_request.spec.user is a string",
    },
    {
      condition: "true && access_request.spec.roles",
      column: 9,
      reason: '"&&" needs a boolean, but access_request.spec.roles is a set',
    },
    {
      condition: 'access_request.spec.roles["x"].contains("y")',
      column: 1,
      reason: '"[…]" needs a map, but access_request.spec.roles is a set',
    },
    {
      condition: 'user.traits[1].contains("y")',
      column: 13,
      reason: "a map key needs a string, but 1 is an integer",
    },
    {
      condition: 'regexp.match(access_request.spec.request_reason, "x")',
      column: 14,
      reason: /^argument 1 of function "regexp\.match" must be a set/,
    },
    {
      condition: 'access_request.spec.creation_time.before("2024-01-01T00:00:00Z")',
      column: 42,
      reason:
        /^argument 1 of method "before" must be a time, but "2024-01-01T00:00:00Z" is a string$/,
    },
    {
      condition: 'access_request.spec.creation_time.after(time.RFC3339("2024-02-30T00:00:00Z"))',
      column: 54,
      reason: 'time "2024-02-30T00:00:00Z" has its day out of range',
    },
    {
      condition: 'access_request.spec.creation_time.after(time.RFC3339("yesterday"))',
      column: 54,
      reason: /^time "yesterday" is not in RFC 3339 form/,
    },
    {
      condition: 'regexp.match(set("a"), "^(a$")',
      column: 24,
      reason: /^regular expression "\^\(a\$" is not valid/,
    },
    {
      condition: 'regexp.match(set("a"), "^(?=a).$")',
      column: 24,
      reason: `regular expression "^(?=a).$" uses a lookaround, which Go's RE2 lacks`,
    },
    {
      condition: 'regexp.match(set("aa"), "^(a)\\\\1$")',
      column: 25,
      reason: /uses a backreference, which Go's RE2 lacks$/,
    },
    {
      condition: 'set("a")("b")',
      column: 9,
      reason: 'only functions and methods can be called, not set("a")',
    },
    {
      condition: 'set("a").size == 1',
      column: 10,
      reason: /^"\.size" cannot follow set\("a"\)/,
    },
  ];
  for (const c of cases) {
    const error = conditionError(() => parseCondition(c.condition));
    assert.equal(error.column, c.column, `column of ${c.condition}`);
    if (typeof c.reason === "string") assert.equal(error.reason, c.reason, c.condition);
    else assert.match(error.reason, c.reason, c.condition);
  }
});

Deno.test("the error message quotes the condition and names the place", () => {
  const error = conditionError(() => parseCondition('access_request.spec.rolez.contains("x")'));
  assert.equal(error.name, "ConditionError");
  assert.ok(error instanceof Error);
  assert.match(
    error.message,
    /^Cannot parse condition "access_request\.spec\.rolez\.contains\(\\"x\\"\)" at column 1: unknown field /,
  );
  const multiline = conditionError(() => parseCondition("true &&\n  bogus"));
  assert.equal(
    multiline.message,
    'Cannot parse condition "true &&\\n  bogus" at line 2, column 3: unknown name "bogus"',
  );
});

Deno.test("values only known at run time fail when evaluated, naming the call", () => {
  const timeCond = parseCondition(
    "time.RFC3339(access_request.spec.request_reason).before(access_request.spec.expiry)",
  );
  const error = conditionError(() => evaluateCondition(timeCond, ENV));
  assert.equal(error.column, 1);
  assert.match(
    error.message,
    /^Cannot evaluate condition "time\.RFC3339\(.*\)" at column 1: time "incident INC-42: need \\"db\\" access" is not in RFC 3339 form/,
  );
  // The same condition holds once the value is usable.
  assert.equal(
    evaluateCondition(timeCond, {
      request: { ...REQUEST, requestReason: "2024-05-01T10:59:59Z" },
    }),
    true,
  );

  const patternCond = parseCondition(
    "regexp.match(access_request.spec.roles, access_request.spec.request_reason)",
  );
  assert.equal(
    evaluateCondition(patternCond, { request: { ...REQUEST, requestReason: "d*" } }),
    true,
  );
  assert.match(
    conditionError(() =>
      evaluateCondition(patternCond, { request: { ...REQUEST, requestReason: "^(d$" } })
    ).reason,
    /^regular expression "\^\(d\$" is not valid/,
  );
});

// ---------------------------------------------------------------------------
// Hostile conditions and requests: RE2 and the globs run in linear time, and one
// evaluation is bounded, so none of these holds the event loop. (How long they take is
// measured outside the tests; here only what they answer is asserted.)

function withReason(requestReason: string): ConditionEnv {
  return { request: { ...REQUEST, requestReason } };
}

const NESTED_QUANTIFIER = 'regexp.match(set(access_request.spec.request_reason), "^(a+)+$")';
const PROD_DB_GLOB = 'regexp.match(set(access_request.spec.request_reason), "*prod*db*")';

Deno.test("^(a+)+$ is linear: a 41-character and a 100 KB reason answer at once", () => {
  const cond = parseCondition(NESTED_QUANTIFIER);
  assert.equal(evaluateCondition(cond, withReason("a".repeat(40) + "!")), false);
  assert.equal(evaluateCondition(cond, withReason("a".repeat(41))), true);
  assert.equal(evaluateCondition(cond, withReason("a".repeat(100 * 1024 - 1) + "!")), false);
  assert.equal(evaluateCondition(cond, withReason("a".repeat(100 * 1024))), true);
});

Deno.test("*prod*db* is linear: a 1 MB reason answers at once", () => {
  const cond = parseCondition(PROD_DB_GLOB);
  const mb = 1024 * 1024;
  assert.equal(evaluateCondition(cond, withReason("prod".repeat(mb / 4))), false);
  assert.equal(evaluateCondition(cond, withReason("prod" + "x".repeat(mb - 6) + "db")), true);
  assert.equal(evaluateCondition(cond, withReason("db" + "prod".repeat(mb / 4))), false);
  assert.equal(evaluateCondition(cond, withReason("prod" + "db".repeat(mb / 2))), true);
  // A line break stops "*", as Go's "." does.
  assert.equal(evaluateCondition(cond, withReason("prod\n" + "x".repeat(mb) + "db")), false);
});

Deno.test("an evaluation that would take too long stops with an error instead", () => {
  // 1 MB through a 600-instruction program is more than the budget; it is refused before it runs.
  const big = parseCondition(
    'regexp.match(set(access_request.spec.request_reason), "^[a-z]{1,100}[a-z]{1,100}[a-z]{1,100}$")',
  );
  const error = conditionError(() => evaluateCondition(big, withReason("a".repeat(1024 * 1024))));
  assert.match(error.message, /^Cannot evaluate condition /);
  assert.equal(
    error.reason,
    `evaluating the condition takes more than ${MAX_EVALUATION_STEPS} steps, the limit that ` +
      "keeps the plugin responsive",
  );
  assert.equal(evaluateCondition(big, withReason("abc")), true);
  // Strings that double at every step.
  let doubling = "access_request.spec.request_reason";
  for (let i = 0; i < 24; i++) doubling = `strings.replaceall(${doubling}, "a", "aa")`;
  const blowUp = parseCondition(`${doubling} == "x"`);
  assert.match(
    conditionError(() => evaluateCondition(blowUp, withReason("a"))).reason,
    /^evaluating the condition takes more than/,
  );
  // The budget is an option.
  const small = parseCondition('access_request.spec.roles.contains("dba")');
  assert.equal(evaluateCondition(small, ENV, { maxSteps: 100 }), true);
  assert.match(
    conditionError(() => evaluateCondition(small, ENV, { maxSteps: 1 })).reason,
    /^evaluating the condition takes more than 1 steps/,
  );
});

Deno.test("regular expressions too large to compile quickly are refused", () => {
  const huge = "^" + "\\\\pL{1,1000}".repeat(3) + "$";
  const error = conditionError(() => parseCondition(`regexp.match(set("a"), "${huge}")`));
  assert.equal(error.column, 24);
  assert.match(
    error.reason,
    new RegExp(
      `is too large: it compiles to about \\d+ instructions, and this plugin allows ${MAX_REGEXP_SIZE}$`,
    ),
  );
  // Several that are each small enough but too large together.
  const each = '"^\\\\pL{1,1000}\\\\pL{1,1000}$"';
  const many = Array.from({ length: 3 }, () => `regexp.match(set("a"), ${each})`).join(" || ");
  assert.match(
    conditionError(() => parseCondition(many)).reason,
    /^the condition's regular expressions compile to about \d+ instructions in all/,
  );
  // A pattern read from the request is checked when evaluated.
  const fromRequest = parseCondition('regexp.match(set("a"), access_request.spec.request_reason)');
  assert.match(
    conditionError(() =>
      evaluateCondition(fromRequest, withReason("^" + "\\pL{1,1000}".repeat(3) + "$"))
    ).reason,
    /is too large: it compiles to about/,
  );
  assert.equal(evaluateCondition(fromRequest, withReason("^\\pL$")), true);
});
