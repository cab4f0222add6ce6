import assert from "node:assert/strict";
import { RE2JS } from "re2js";
import { globMatches, globNeedsRegexp, globToRegexp, quoteMeta } from "./_glob.ts";

Deno.test("globToRegexp quotes everything and turns each * into (.*), as Teleport does", () => {
  assert.equal(globToRegexp("prod-*"), "^prod-(.*)$");
  assert.equal(globToRegexp("a.b*c+d?"), "^a\\.b(.*)c\\+d\\?$");
  assert.equal(globToRegexp("a\\*b"), "^a\\\\(.*)b$");
  assert.equal(globToRegexp("**"), "^(.*)(.*)$");
  assert.equal(quoteMeta("[x]{1}|^$"), "\\[x\\]\\{1\\}\\|\\^\\$");
});

Deno.test("globMatches answers as RE2 does on Teleport's regular expression", () => {
  const table: [string, string, boolean][] = [
    ["prod-db", "prod-*", true],
    ["prod-db", "*-db", true],
    ["prod-db", "*", true],
    ["", "*", true],
    ["", "", true],
    ["x", "", false],
    ["prod", "prod", true],
    ["prod", "pro", false],
    ["aXbXc", "a*b*c", true],
    ["abc", "a*b*c", true],
    ["ac", "a*b*c", false],
    ["abcabc", "*abc", true],
    ["aaa", "a*a*a", true],
    ["aa", "a*a*a", false],
    ["a\nb", "a*b", false],
    ["a\nb", "*", false],
    ["ab\n", "ab", false],
  ];
  for (const [input, glob, expected] of table) {
    assert.equal(globMatches(input, glob), expected, `${JSON.stringify(input)} ~ ${glob}`);
    const re = RE2JS.compile(globToRegexp(glob));
    assert.equal(re.test(input), expected, `RE2: ${JSON.stringify(input)} ~ ${glob}`);
  }
});

Deno.test("globMatches agrees with RE2 on many generated globs and inputs", () => {
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed % n;
  };
  const word = (alphabet: string, max: number) =>
    Array.from({ length: random(max + 1) }, () => alphabet[random(alphabet.length)]).join("");
  let checked = 0;
  for (let i = 0; i < 4000; i++) {
    const glob = word("ab*.\n", 6);
    const input = word("ab.\n", 8);
    if (globNeedsRegexp(glob)) continue;
    const expected = RE2JS.compile(globToRegexp(glob)).test(input);
    assert.equal(
      globMatches(input, glob),
      expected,
      `${JSON.stringify(input)} ~ ${JSON.stringify(glob)}`,
    );
    checked++;
  }
  assert.ok(checked > 1000);
});

Deno.test("a glob whose literal parts hold a line break is left to RE2", () => {
  assert.equal(globNeedsRegexp("a\n*"), true);
  assert.equal(globNeedsRegexp("a\nb"), false); // no wildcard: compared as a string
  assert.equal(globNeedsRegexp("a*b"), false);
});
