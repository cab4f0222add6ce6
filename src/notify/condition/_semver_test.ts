import assert from "node:assert/strict";
import { compareSemver, parseSemver } from "./_semver.ts";

Deno.test("parseSemver reads go-semver's dotted-tri versions", () => {
  assert.deepEqual(parseSemver("1.2.3"), { numbers: [1n, 2n, 3n], preRelease: "" });
  assert.deepEqual(parseSemver("1.2.3-rc.1+build.5"), {
    numbers: [1n, 2n, 3n],
    preRelease: "rc.1",
  });
  assert.deepEqual(parseSemver("01.002.3"), { numbers: [1n, 2n, 3n], preRelease: "" });
  assert.deepEqual(parseSemver("1.2.3-a-b"), { numbers: [1n, 2n, 3n], preRelease: "a-b" });
  const errors: [string, string][] = [
    ["1.2", "1.2 is not in dotted-tri format"],
    ["1.2.3.4", 'strconv.ParseInt: parsing "3.4": invalid syntax'],
    ["v1.2.3", 'strconv.ParseInt: parsing "v1": invalid syntax'],
    ["1.2.x", 'strconv.ParseInt: parsing "x": invalid syntax'],
    ["1..3", 'strconv.ParseInt: parsing "": invalid syntax'],
    ["1.2.3-a..b", "failed to validate pre-release: a..b is not a valid semver identifier"],
    ["1.2.3+a_b", "failed to validate metadata: a_b is not a valid semver identifier"],
    [
      "1.2.99999999999999999999",
      'strconv.ParseInt: parsing "99999999999999999999": value out of range',
    ],
  ];
  for (const [text, message] of errors) assert.throws(() => parseSemver(text), { message }, text);
  // An empty pre-release or metadata is no pre-release or metadata.
  assert.deepEqual(parseSemver("1.2.3-"), { numbers: [1n, 2n, 3n], preRelease: "" });
  assert.deepEqual(parseSemver("1.2.3+"), { numbers: [1n, 2n, 3n], preRelease: "" });
});

Deno.test("compareSemver orders as go-semver's Version.Compare", () => {
  const ordered = [
    "0.9.9",
    "1.0.0-1",
    "1.0.0-2",
    "1.0.0-10",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.10.0",
    "2.0.0",
  ];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const got = compareSemver(parseSemver(ordered[i]!), parseSemver(ordered[j]!));
      assert.equal(got, Math.sign(i - j), `${ordered[i]} vs ${ordered[j]}`);
    }
  }
  assert.equal(compareSemver(parseSemver("1.0.0+a"), parseSemver("1.0.0+b")), 0);
});
