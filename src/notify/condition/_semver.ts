/**
 * Semantic versions as `newer_than`, `older_than` and the string form of
 * `between` compare them (Teleport's `expression.SemverGt` / `SemverLt` /
 * `SemverBetween` on coreos/go-semver): "MAJOR.MINOR.PATCH" with optional
 * "-pre.release" and "+metadata", parsed the way `semver.NewVersion` does.
 */
import { quote } from "./_error.ts";

/** Largest value `strconv.ParseInt(s, 10, 64)` accepts. */
const INT64_MAX = 9_223_372_036_854_775_807n;
const IDENTIFIER = /^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$/;

export interface SemVer {
  readonly numbers: readonly [bigint, bigint, bigint];
  readonly preRelease: string;
}

/** `semver.NewVersion(text)`; throws an `Error` worded like go-semver's. */
export function parseSemver(text: string): SemVer {
  let version = text;
  const plus = version.indexOf("+");
  const metadata = plus === -1 ? "" : version.slice(plus + 1);
  if (plus !== -1) version = version.slice(0, plus);
  const dash = version.indexOf("-");
  const preRelease = dash === -1 ? "" : version.slice(dash + 1);
  if (dash !== -1) version = version.slice(0, dash);
  const dotParts = splitN(version, ".", 3);
  if (dotParts.length !== 3) throw new Error(`${clip(version)} is not in dotted-tri format`);
  if (preRelease !== "" && !IDENTIFIER.test(preRelease)) {
    throw new Error(
      `failed to validate pre-release: ${clip(preRelease)} is not a valid semver identifier`,
    );
  }
  if (metadata !== "" && !IDENTIFIER.test(metadata)) {
    throw new Error(
      `failed to validate metadata: ${clip(metadata)} is not a valid semver identifier`,
    );
  }
  const numbers = dotParts.map((part) => parseInt64(part)) as [bigint, bigint, bigint];
  return { numbers, preRelease };
}

/** A part of the version as go-semver's errors show it (unquoted), shortened when long. */
function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** `strings.SplitN`. */
function splitN(text: string, sep: string, n: number): string[] {
  const out: string[] = [];
  let rest = text;
  while (out.length < n - 1) {
    const at = rest.indexOf(sep);
    if (at === -1) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at + sep.length);
  }
  out.push(rest);
  return out;
}

/** `strconv.ParseInt(text, 10, 64)`, whose errors read `strconv.ParseInt: parsing "x": …`. */
function parseInt64(text: string): bigint {
  if (!/^[+-]?[0-9]+$/.test(text)) {
    throw new Error(`strconv.ParseInt: parsing ${quote(text)}: invalid syntax`);
  }
  const value = BigInt(text);
  if (value > INT64_MAX || value < -INT64_MAX - 1n) {
    throw new Error(`strconv.ParseInt: parsing ${quote(text)}: value out of range`);
  }
  return value;
}

/** `strconv.Atoi` of a pre-release identifier, or undefined when it is not a number. */
function atoi(text: string): bigint | undefined {
  try {
    return parseInt64(text);
  } catch {
    return undefined;
  }
}

/** go-semver's `Version.Compare`: -1, 0 or 1. */
export function compareSemver(a: SemVer, b: SemVer): number {
  for (let i = 0; i < 3; i++) {
    if (a.numbers[i]! > b.numbers[i]!) return 1;
    if (a.numbers[i]! < b.numbers[i]!) return -1;
  }
  // Otherwise equal, the one without a pre-release is the greater.
  if (a.preRelease === "" && b.preRelease !== "") return 1;
  if (b.preRelease === "" && a.preRelease !== "") return -1;
  return comparePreRelease(a.preRelease.split("."), b.preRelease.split("."));
}

function comparePreRelease(a: readonly string[], b: readonly string[]): number {
  for (let i = 0;; i++) {
    if (i >= a.length) return i >= b.length ? 0 : -1;
    if (i >= b.length) return 1;
    const x = a[i]!;
    const y = b[i]!;
    const xi = atoi(x);
    const yi = atoi(y);
    // Numeric identifiers have lower precedence than the others.
    if (xi !== undefined && yi === undefined) return -1;
    if (xi === undefined && yi !== undefined) return 1;
    if (xi !== undefined && yi !== undefined) {
      if (xi > yi) return 1;
      if (xi < yi) return -1;
    }
    if (x > y) return 1;
    if (x < y) return -1;
  }
}
