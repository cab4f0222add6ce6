/**
 * Every function and method of Teleport's access monitoring rule language,
 * with what Teleport returns, what it refuses when parsing, and what fails
 * only when evaluated (lib/expression/parser.go, lib/accessmonitoring/
 * request_mapping.go).
 */
import type { ConditionEnv } from "../condition.ts";
import { conditionTester } from "./_testing.ts";
import type { AccessRequest } from "../../teleport/types.ts";

const REQUEST: AccessRequest = {
  id: "0193b2c4-request",
  user: "alice",
  roles: ["dba", "dev"],
  state: "PENDING",
  created: new Date("2024-05-01T10:00:00Z"), // a Wednesday
  expires: new Date("2024-05-01T11:00:00Z"),
  requestReason: "incident INC-42",
  resolveReason: "",
  systemAnnotations: { env: ["prod", "staging"] },
  reviews: [],
  suggestedReviewers: ["bob@example.com", "Carol <carol@example.com>"],
  requestedResources: [{ kind: "node", name: "db-1", clusterName: "main", subResourceName: "" }],
  loginHint: "",
};
const ENV: ConditionEnv = { request: REQUEST, userTraits: { team: ["dba", "sre"], level: ["L2"] } };
const { created: _created, ...UNDATED } = REQUEST;

const { table, refused, failing } = conditionTester(ENV);

Deno.test("set, union and the set methods add, remove, contains, isempty", () => {
  table([
    { condition: 'set("a", "b").contains("b")', matches: true },
    { condition: "set().isempty()", matches: true },
    { condition: 'union(set("a"), set("b"), set()).contains_all(set("a", "b"))', matches: true },
    { condition: "is_empty(union())", matches: true },
    { condition: 'set("a").add("b", "c").contains_all(set("a", "b", "c"))', matches: true },
    { condition: 'set("a", "b").remove("a", "x").contains("a")', matches: false },
    { condition: 'set("a", "b").remove("a").contains("b")', matches: true },
    { condition: 'set("a").remove().contains("a")', matches: true },
  ]);
  refused([
    {
      condition: 'set(1).contains("1")',
      column: 5,
      reason: 'argument 1 of function "set" must be a string, but 1 is an integer',
    },
    {
      condition: 'union(set("a"), "b").contains("b")',
      column: 17,
      reason: 'argument 2 of function "union" must be a set, but "b" is a string',
    },
    {
      condition: 'access_request.spec.user.remove("a").contains("b")',
      column: 1,
      reason:
        'the receiver of method "remove" must be a set or a map, but access_request.spec.user is a string',
    },
    { condition: 'set("a").isempty("a")', column: 1, reason: /takes 0 arguments, but 1 is given/ },
  ]);
});

Deno.test("contains_any, contains_all and is_empty, as Teleport defines them", () => {
  table([
    { condition: 'contains_any(set("a", "b"), set("b", "c"))', matches: true },
    { condition: 'set("a").contains_any(set("b"))', matches: false },
    { condition: 'contains_all(set("a", "b"), set("a", "b"))', matches: true },
    { condition: 'set("a").contains_all(set("a", "b"))', matches: false },
    { condition: 'contains_all(set("a"), set())', matches: false }, // an empty item set: false
    { condition: "contains_any(set(), set())", matches: false },
    { condition: "is_empty(access_request.spec.roles)", matches: false },
  ]);
  refused([
    {
      condition: 'is_empty("a")',
      column: 10,
      reason: 'argument 1 of function "is_empty" must be a set, but "a" is a string',
    },
    {
      condition: "access_request.spec.roles.is_empty()",
      column: 27,
      reason: 'unknown method "is_empty"',
    },
    { condition: "isempty(set())", column: 1, reason: 'unknown function "isempty"' },
  ]);
});

Deno.test("dict, pair and the map methods put, add_values and remove", () => {
  // A map cannot be read back except through the variables, but it is built, and checked,
  // when evaluated: ifelse evaluates both branches.
  table([
    { condition: 'ifelse(true, true, dict(pair("team", set("dba"))))', matches: true },
    { condition: "ifelse(true, true, dict())", matches: true },
    {
      condition: 'ifelse(true, true, user.traits.put("a", set("x")).add_values("b", "c", "d"))',
      matches: true,
    },
    { condition: 'ifelse(true, true, user.traits.add_values("team"))', matches: true },
    { condition: 'ifelse(true, true, user.traits.remove("team", "level"))', matches: true },
    { condition: "ifelse(true, true, pair(1, 1.5))", matches: true },
    // Removing from a map field still leaves the field itself as it was.
    {
      condition: 'ifelse(true, true, user.traits.remove("team")) && ' +
        'user.traits["team"].contains("sre")',
      matches: true,
    },
  ]);
  failing([
    {
      condition: 'ifelse(true, true, dict(pair(1, set("x"))))',
      column: 20,
      reason: "dict keys must be strings, but one is an integer",
    },
    {
      condition: 'ifelse(true, true, dict(pair("k", "v")))',
      column: 20,
      reason: "dict values must be sets, but one is a string",
    },
  ]);
  refused([
    {
      condition: 'ifelse(true, true, dict("k"))',
      column: 25,
      reason: 'argument 1 of function "dict" must be a pair, but "k" is a string',
    },
    {
      condition: 'ifelse(true, true, user.traits.put("k", "v"))',
      column: 41,
      reason: 'argument 2 of method "put" must be a set, but "v" is a string',
    },
    {
      condition: 'ifelse(true, true, set("a").put("k", set()))',
      column: 20,
      reason: 'the receiver of method "put" must be a map, but set("a") is a set',
    },
    {
      condition: "ifelse(true, true, user.traits.add_values())",
      column: 20,
      reason: 'method "add_values" takes at least 1 argument, but 0 are given',
    },
    {
      condition: 'dict(pair("a", set("x")))["a"].contains("x")',
      column: 1,
      reason: /^"\[…\]" needs a map field such as user\.traits, but dict\(/,
    },
    { condition: 'pair("a")', column: 1, reason: /takes 2 arguments, but 1 is given/ },
  ]);
});

Deno.test("ifelse, choose and option return values whose type is checked when evaluated", () => {
  table([
    {
      condition: 'ifelse(access_request.spec.user == "alice", "yes", "no") == "yes"',
      matches: true,
    },
    { condition: '"no" == ifelse(false, "yes", "no")', matches: true },
    { condition: "ifelse(false, true, false)", matches: false },
    { condition: 'ifelse(true, set("a"), set()).contains("a")', matches: true },
    {
      condition: 'ifelse(true, access_request.spec.roles, set()).remove("dba").contains("dev")',
      matches: true,
    },
    { condition: '!ifelse(true, false, "x")', matches: true },
    // A condition that is not true does not match, whatever it is (Teleport's EvaluateCondition).
    { condition: 'ifelse(true, "x", true)', matches: false },
    { condition: 'choose(option(false, "a"), option(true, "b")) == "b"', matches: true },
    { condition: 'choose(option(true, "a"), option(true, "b")) == "a"', matches: true },
    { condition: 'choose(option(false, "a"), option(true, true))', matches: true },
  ]);
  failing([
    {
      condition: 'ifelse(true, "a", set()).contains("a")',
      column: 1,
      reason:
        'the receiver of method "contains" must be a set, but ifelse(true, "a", set()) gave a string',
    },
    {
      condition: 'ifelse(true, set(), "a") == "a"',
      column: 1,
      reason: '"==" needs a string, but ifelse(true, set(), "a") gave a set',
    },
    { condition: '!ifelse(true, "x", false)', column: 2, reason: /^"!" needs a boolean, but/ },
    {
      condition: 'choose(option(false, "a")) == "a"',
      column: 1,
      reason: 'no option of choose applies; add a default one such as option(true, "…")',
    },
  ]);
  refused([
    {
      condition: 'ifelse("yes", "a", "b") == "a"',
      column: 8,
      reason: 'argument 1 of function "ifelse" must be a boolean, but "yes" is a string',
    },
    {
      condition: 'ifelse(true, "a", "b") == ifelse(true, "a", "b")',
      column: 24,
      reason: /^"==" needs one side whose type is known when parsing/,
    },
    {
      condition: 'choose("a") == "a"',
      column: 8,
      reason: 'argument 1 of function "choose" must be an option, but "a" is a string',
    },
    {
      condition: 'choose(option("yes", "a")) == "a"',
      column: 15,
      reason: 'argument 1 of function "option" must be a boolean, but "yes" is a string',
    },
  ]);
});

Deno.test("strings.upper, strings.lower, strings.replaceall and strings.split", () => {
  table([
    { condition: 'strings.upper("alice") == "ALICE"', matches: true },
    { condition: 'strings.lower(set("A", "B")).contains_all(set("a", "b"))', matches: true },
    { condition: 'strings.replaceall(set("a-b", "c"), "-", "_").contains("a_b")', matches: true },
    { condition: 'strings.replaceall("aaa", "a", "b") == "bbb"', matches: true },
    {
      condition: 'strings.split(set("a,b", "c"), ",").contains_all(set("a", "b", "c"))',
      matches: true,
    },
    { condition: 'strings.split(set("ab"), "").contains_all(set("a", "b"))', matches: true },
    { condition: 'strings.split(set(""), ",").contains("")', matches: true },
  ]);
  // Their input is typed `any` in Teleport: anything parses, and the wrong kind fails when evaluated.
  failing([
    {
      condition: 'strings.upper(1) == "1"',
      column: 1,
      reason: 'function "strings.upper" needs a string or a set, but its argument is an integer',
    },
    {
      condition: 'strings.lower(user.traits) == "x"',
      column: 1,
      reason: 'function "strings.lower" needs a string or a set, but its argument is a map',
    },
    {
      condition: 'strings.replaceall(true, "a", "b") == "x"',
      column: 1,
      reason: /^function "strings\.replaceall" needs a string or a set/,
    },
  ]);
  refused([
    {
      condition: 'strings.replaceall("a", 1, "b") == "a"',
      column: 25,
      reason: 'argument 2 of function "strings.replaceall" must be a string, but 1 is an integer',
    },
    {
      condition: 'strings.split("a,b", ",").contains("a")',
      column: 15,
      reason: 'argument 1 of function "strings.split" must be a set, but "a,b" is a string',
    },
  ]);
});

Deno.test("email.local takes the local part the way Go's net/mail reads an address", () => {
  table([
    {
      condition:
        'email.local(access_request.spec.suggested_reviewers).contains_all(set("bob", "carol"))',
      matches: true,
    },
    {
      condition: 'email.local(set(access_request.spec.user)).contains("alice")',
      matches: true,
      env: { request: { ...REQUEST, user: "alice@example.com" } },
    },
    { condition: 'email.local(set("\\"a b\\"@example.com")).contains("a b")', matches: true },
    { condition: 'email.local(set("a@b (Alice)")).contains("a")', matches: true },
    { condition: "is_empty(email.local(set()))", matches: true },
  ]);
  failing([
    {
      condition: 'email.local(set("")).contains("x")',
      column: 1,
      reason: 'found empty "email.local" argument',
    },
    {
      condition: 'email.local(set("not an address")).contains("x")',
      column: 1,
      reason: 'failed to parse "email.local" argument "not an address": mail: no angle-addr',
    },
    {
      condition: 'email.local(set(access_request.spec.user)).contains("alice")',
      column: 1,
      reason: `failed to parse "email.local" argument "alice": mail: missing '@' or angle-addr`,
    },
  ]);
  refused([
    {
      condition: 'email.local("a@b").contains("a")',
      column: 13,
      reason: 'argument 1 of function "email.local" must be a set, but "a@b" is a string',
    },
  ]);
});

Deno.test("regexp.replace: Go's RE2 and ReplaceAllString, dropping what does not match", () => {
  table([
    {
      condition:
        'regexp.replace(set("alice@example.com", "bob@other.com"), "^(.*)@example.com$", ' +
        '"$1").contains("alice")',
      matches: true,
    },
    // Inputs that do not match are dropped, so are results that become empty.
    {
      condition:
        'regexp.replace(set("alice@example.com", "bob@other.com"), "^(.*)@example.com$", ' +
        '"$1").contains_any(set("bob", "bob@other.com"))',
      matches: false,
    },
    { condition: 'is_empty(regexp.replace(set("x"), "^a$", "b"))', matches: true },
    { condition: 'is_empty(regexp.replace(set("a"), "a", ""))', matches: true },
    // Not anchored: every match is replaced, and a glob means nothing here.
    { condition: 'regexp.replace(set("banana"), "an", "AN").contains("bANANa")', matches: true },
    // Go's template: $1, ${1}, $name, ${name}, $$; "$1x" names group "1x", which is empty.
    { condition: 'regexp.replace(set("ab"), "(a)(b)", "$2$1").contains("ba")', matches: true },
    { condition: 'regexp.replace(set("ab"), "(a)b", "${1}x").contains("ax")', matches: true },
    { condition: 'is_empty(regexp.replace(set("ab"), "(a)b", "$1x"))', matches: true },
    {
      condition:
        'regexp.replace(set("ab"), "(?P<first>a)b", "${first}-$$-$first").contains("a-$-a")',
      matches: true,
    },
    { condition: 'regexp.replace(set("ab"), "(a)b", "$9|$").contains("|$")', matches: true },
    // Empty matches, as Go replaces them.
    { condition: 'regexp.replace(set("abc"), "x*", "-").contains("-a-b-c-")', matches: true },
    { condition: 'regexp.replace(set("abc"), "b*", "-").contains("-a-c-")', matches: true },
    { condition: 'regexp.replace(set("aé😀"), "", ".").contains(".a.é.😀.")', matches: true },
  ]);
  refused([
    {
      condition: 'regexp.replace(set("a"), "(", "b").contains("a")',
      column: 26,
      reason: /^regular expression "\(" is not valid: error parsing regexp: missing closing \)/,
    },
  ]);
  failing([
    {
      condition: 'regexp.replace(set("a"), access_request.spec.request_reason, "b").contains("a")',
      column: 1,
      reason:
        /^regular expression "incident \(INC-42" is not valid: error parsing regexp: missing closing \)/,
      env: { request: { ...REQUEST, requestReason: "incident (INC-42" } },
    },
  ]);
});

Deno.test("regexp.match: globs and RE2 regular expressions, as utils.RegexMatchesAny", () => {
  table([
    { condition: 'regexp.match(set("prod-db"), "prod-*")', matches: true },
    { condition: 'regexp.match(set("prod-db"), "*-db")', matches: true },
    { condition: 'regexp.match(set("prod-db"), "prod")', matches: false }, // a glob matches the whole string
    { condition: 'regexp.match(set("a\\nb"), "a*b")', matches: false }, // "*" stops at a line break, like Go's "."
    { condition: 'regexp.match(set("a\\nb"), "a\\n*")', matches: true },
    { condition: 'regexp.match(set("a+b"), "a+b")', matches: true }, // a glob's "+" is literal
    { condition: 'regexp.match(set("x-prod-y"), "^prod|y$")', matches: true }, // "^…$": a search
    { condition: 'regexp.match(set("a\\n"), "^a$")', matches: false }, // "$" is the end of the text
    { condition: 'regexp.match(set("é"), "^\\\\pL$")', matches: true },
    { condition: 'regexp.match(set("STRASSE"), "^(?i)straße$")', matches: false },
    { condition: 'regexp.match(set("dev-team"), "^(?<kind>dev)-team$")', matches: true },
  ]);
  refused([
    {
      condition: 'regexp.match(set("a"), "^a{1001}$")',
      column: 24,
      reason: /^regular expression "\^a\{1001\}\$" is not valid: .*invalid repeat count/,
    },
    {
      condition: 'regexp.match(set("a"), "^\\\\C$")',
      column: 24,
      reason: /invalid escape sequence/,
    },
    {
      condition: 'regexp.match(set("a"), "^(?<=a)b$")',
      column: 24,
      reason: /uses a lookaround, which Go's RE2 lacks$/,
    },
  ]);
});

Deno.test("time.RFC3339, before, after and between keep Go's nanoseconds", () => {
  table([
    {
      condition: 'time.RFC3339("2024-05-01T11:00:00.0000001Z").after(access_request.spec.expiry)',
      matches: true,
    },
    {
      condition:
        'before(access_request.spec.expiry, time.RFC3339("2024-05-01T11:00:00.000000001Z"))',
      matches: true,
    },
    {
      condition: 'access_request.spec.expiry.before(time.RFC3339("2024-05-01T13:00:00+02:00"))',
      matches: false,
    },
  ]);
  failing([
    {
      condition: "access_request.spec.creation_time.between(access_request.spec.expiry)",
      column: 1,
      reason: "between needs 2 times, but 1 given",
    },
    {
      condition: 'between(access_request.spec.creation_time, "1.0.0", access_request.spec.expiry)',
      column: 1,
      reason: "between needs two times to compare a time with",
    },
  ]);
  refused([
    {
      condition: "between(access_request.spec.creation_time, access_request.spec.expiry)",
      column: 1,
      reason: 'function "between" takes 3 arguments, but 2 are given',
    },
    {
      condition: 'access_request.spec.creation_time.between("a", "b")',
      column: 43,
      reason: 'argument 1 of method "between" must be a time, but "a" is a string',
    },
  ]);
});

Deno.test("newer_than, older_than and between compare semantic versions", () => {
  table([
    { condition: 'newer_than("1.10.0", "1.9.0")', matches: true },
    { condition: 'newer_than("1.9.0", "1.10.0")', matches: false },
    { condition: 'older_than("1.0.0-rc.1", "1.0.0")', matches: true },
    { condition: 'newer_than("1.0.0-rc.10", "1.0.0-rc.9")', matches: true },
    { condition: 'newer_than("1.0.0-alpha", "1.0.0-1")', matches: true },
    { condition: 'newer_than("1.0.0+build.2", "1.0.0+build.1")', matches: false },
    { condition: 'between("1.2.3", "1.2.0", "1.3.0")', matches: true },
    { condition: 'between("1.2.0", "1.2.0", "1.3.0")', matches: true }, // the low end is included
    { condition: 'between("1.3.0", "1.2.0", "1.3.0")', matches: false }, // the high end is not
  ]);
  failing([
    {
      condition: 'newer_than("v1.2.3", "1.0.0")',
      column: 1,
      reason: 'strconv.ParseInt: parsing "v1": invalid syntax',
    },
    {
      condition: 'older_than("1.2", "1.0.0")',
      column: 1,
      reason: "1.2 is not in dotted-tri format",
    },
    {
      condition: 'newer_than(access_request.spec.roles, "1.0.0")',
      column: 1,
      reason: "a set cannot be read as a version",
    },
  ]);
});

Deno.test("day and clock_between read the time of day, in UTC as Teleport does here", () => {
  table([
    { condition: 'day(access_request.spec.creation_time) == "Wednesday"', matches: true },
    { condition: 'access_request.spec.creation_time.day() == "Wednesday"', matches: true },
    // day() reads the weekday in the zone the time was written with.
    { condition: 'day(time.RFC3339("2024-05-01T23:30:00-05:00")) == "Wednesday"', matches: true },
    // An unset time is Go's zero time, a Monday.
    {
      condition: 'day(access_request.spec.creation_time) == "Monday"',
      env: { request: UNDATED },
      matches: true,
    },
    {
      condition: 'clock_between(access_request.spec.creation_time, "09:00", "11:00")',
      matches: true,
    },
    {
      condition: 'clock_between(access_request.spec.creation_time, "9:00", "10:30")',
      matches: true,
    },
    // Both ends are excluded.
    {
      condition: 'access_request.spec.creation_time.clock_between("10:00", "11:00")',
      matches: false,
    },
    {
      condition: 'clock_between(access_request.spec.creation_time, "11:00", "09:00")',
      matches: false,
    },
    {
      condition: 'clock_between(time.RFC3339("2024-05-01T23:30:00-05:00"), "04:00", "05:00")',
      matches: true,
    },
  ]);
  failing([
    {
      condition: 'clock_between(access_request.spec.creation_time, "9:0", "11:00")',
      column: 1,
      reason: 'invalid start interval: clock "9:0" is not in the form "15:04"',
    },
    {
      condition: 'clock_between(access_request.spec.creation_time, "09:00", "24:00")',
      column: 1,
      reason: 'invalid end interval: clock "24:00" has its hour out of range',
    },
  ]);
  refused([
    {
      condition: 'day("2024-05-01") == "Wednesday"',
      column: 5,
      reason: 'argument 1 of function "day" must be a time, but "2024-05-01" is a string',
    },
  ]);
});

Deno.test("label helpers see no requested resources, as in the Go plugin's environment", () => {
  table([
    { condition: 'is_empty(access_request.spec.resource_labels_union["env"])', matches: true },
    { condition: "is_empty(access_request.spec.resource_labels_intersection.env)", matches: true },
    {
      condition: 'has_labels(access_request.spec.requested_resources, "env", "prod")',
      matches: true,
    },
    {
      condition: 'access_request.spec.requested_resources.has_labels("env", "prod")',
      matches: true,
    },
    { condition: "access_request.spec.requested_resources.length == 0", matches: true },
  ]);
  refused([
    {
      condition: 'has_labels(access_request.spec.roles, "env", "prod")',
      column: 12,
      reason:
        'argument 1 of function "has_labels" must be a list of resources, but access_request.spec.roles is a set',
    },
  ]);
});

Deno.test("names Teleport's access monitoring rule parser does not define are refused", () => {
  refused([
    {
      condition: 'plugin.spec.name == "email"',
      column: 1,
      reason: /^unknown field "plugin\.spec\.name"/,
    },
    { condition: 'user.spec.traits["a"].contains("b")', column: 1, reason: /^unknown field/ },
    {
      condition: 'regexp.not_match(set("a"), "b")',
      column: 1,
      reason: 'unknown function "regexp.not_match"',
    },
    {
      condition: "len(access_request.spec.roles) == 1",
      column: 1,
      reason: 'unknown function "len"',
    },
    { condition: 'access_request.spec.roles.has("a")', column: 27, reason: 'unknown method "has"' },
  ]);
});
