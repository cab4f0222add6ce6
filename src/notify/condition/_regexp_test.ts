import assert from "node:assert/strict";
import { Budget } from "./_budget.ts";
import {
  checkPattern,
  compileGoRegexp,
  estimateProgramSize,
  matchesAny,
  MAX_REGEXP_SIZE,
  replaceAllString,
} from "./_regexp.ts";

Deno.test("the size estimate is never below what RE2 compiles", () => {
  const patterns = [
    "^a$",
    "^(a+)+$",
    "^(a|aa)+$",
    "^[a-z]{1,100}[a-z]{1,100}$",
    "^(?i)straße$",
    "^(?P<kind>dev)-(?<team>[a-z]+)$",
    "^\\Qa.b*c\\E+$",
    "^(x|y|z|a){0,50}b$",
    "^(a{1,50}){1,20}b$",
    "^\\pL{1,1000}$",
    "^\\p{Greek}+\\x{41}\\x41[[:alpha:]\\d-]*$",
    "^(?:a|b|c|)*?$",
    "^a{3,}b{0,}c{2}$",
    "^(((a)))(b(c(d)))$",
    "^(?s:.)(?m:^x$)\\b\\B\\A\\z$",
    "^[]a]|[^]b]$",
    "^.*(?i:abc|def){2,5}.*$",
    "^" + "(a|b)".repeat(200) + "$",
  ];
  for (const pattern of patterns) {
    const compiled = compileGoRegexp(pattern);
    assert.ok(
      estimateProgramSize(pattern) >= compiled.size,
      `${pattern}: estimated ${estimateProgramSize(pattern)}, compiled ${compiled.size}`,
    );
  }
});

Deno.test("patterns Go's RE2 refuses, and ones too large, are refused with the reason", () => {
  assert.throws(() => checkPattern("^(?=a)$"), /uses a lookaround, which Go's RE2 lacks$/);
  assert.throws(() => checkPattern("^(?<!a)b$"), /uses a lookaround/);
  assert.throws(() => checkPattern("^(a)\\1$"), /uses a backreference, which Go's RE2 lacks$/);
  assert.doesNotThrow(() => checkPattern("^\\12$")); // octal, as in Go
  assert.doesNotThrow(() => compileGoRegexp("^\\12$"));
  assert.doesNotThrow(() => checkPattern("^\\Q\\1(?=\\E$"));
  assert.throws(
    () => compileGoRegexp("^(a$"),
    /^Error: regular expression "\^\(a\$" is not valid: error parsing regexp: missing closing \)/,
  );
  assert.throws(() => compileGoRegexp("^a**$"), /invalid nested repetition operator/);
  assert.throws(
    () => checkPattern("^" + "\\pL{1,1000}".repeat(3) + "$"),
    new RegExp(
      `too large: it compiles to about \\d+ instructions, and this plugin allows ${MAX_REGEXP_SIZE}$`,
    ),
  );
  // A long pattern is quoted shortened.
  assert.throws(() => checkPattern("^" + "x".repeat(6000) + "$"), /"\^x{78}…" is too large/);
});

Deno.test("matchesAny: Go's MatchString for ^…$, whole-string globs otherwise", () => {
  const budget = new Budget();
  assert.equal(matchesAny(["x-prod-y"], "^prod|y$", budget), true);
  assert.equal(matchesAny(["a\n"], "^a$", budget), false);
  assert.equal(matchesAny(["b", "prod-1"], "prod-*", budget), true);
  assert.equal(matchesAny(["a\nb"], "a\n*", budget), true); // a glob with a line break goes to RE2
  assert.equal(matchesAny([], "*", budget), false);
  assert.ok(budget.used > 0);
});

Deno.test("replaceAllString follows Go: empty matches, $ templates, positions in UTF-16", () => {
  const replace = (pattern: string, input: string, template: string) =>
    replaceAllString(compileGoRegexp(pattern), input, template, new Budget());
  assert.equal(replace("a(x*)b", "-ab-axxb-", "T"), "-T-T-");
  assert.equal(replace("a(x*)b", "-ab-axxb-", "$1"), "--xx-");
  assert.equal(replace("a(x*)b", "-ab-axxb-", "$1W"), "---"); // "$1W" names group "1W"
  assert.equal(replace("a(x*)b", "-ab-axxb-", "${1}W"), "-W-xxW-");
  assert.equal(replace("a(?P<x>x*)b", "-ab-axxb-", "<$x>"), "-<>-<xx>-");
  assert.equal(replace("a(x*)b", "-ab-axxb-", "$$1"), "-$1-$1-");
  assert.equal(replace("a(x*)b", "-ab-axxb-", "${"), "-${-${-");
  assert.equal(replace("a(x*)b", "-ab-axxb-", "$01"), "---"); // a leading zero makes it a name
  assert.equal(replace("x*", "abc", "-"), "-a-b-c-");
  assert.equal(replace("b*", "abc", "-"), "-a-c-");
  assert.equal(replace("", "😀é", "."), ".😀.é.");
  assert.equal(replace("^a", "aaa", "b"), "baa"); // "^" only at the start of the text
  assert.equal(replace("(a)|b", "ab", "[$1]"), "[a][]"); // an unmatched group is empty
});

Deno.test("a match is charged its worst case before it runs", () => {
  const budget = new Budget(1000);
  assert.throws(
    () => matchesAny(["a".repeat(1000)], "^(a+)+$", budget),
    /takes more than 1000 steps/,
  );
  const roomy = new Budget();
  matchesAny(["a".repeat(1000)], "^(a+)+$", roomy);
  const size = compileGoRegexp("^(a+)+$").size;
  assert.ok(roomy.used >= 1000 * size, `used ${roomy.used}`);
});
