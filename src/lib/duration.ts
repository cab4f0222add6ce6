/**
 * Go duration strings (`time.ParseDuration`), as written in the config file:
 * `"30s"`, `"1h30m"`, `"1.5h"`, `"500ms"`. Negative durations are rejected
 * because nothing we configure can wait for a negative time.
 */

/** Milliseconds per unit, keyed by Go's unit spellings (both micro signs included). */
const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // µ MICRO SIGN
  "\u03bcs": 1e-3, // μ GREEK SMALL LETTER MU
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's largest duration (2^63 - 1 ns) in milliseconds; longer ones overflow there. */
const MAX_DURATION_MS = 9_223_372_036_854.775;
/** The same, as Go's `time.Duration.String` writes it. */
const MAX_DURATION_TEXT = "2562047h47m16.854775807s";

/** One `<number><unit>` component: digits with an optional fraction, then a unit. */
const COMPONENT = /^(\d+(?:\.\d*)?|\.\d+)([^\d.]*)/;

/**
 * Parses a Go duration string into milliseconds (possibly fractional for
 * `ns`/`us` units). Throws `SyntaxError` for malformed text and `RangeError`
 * for negative or overlong durations.
 */
export function parseDuration(text: string): number {
  const fail = (reason: string) =>
    new SyntaxError(`Invalid duration ${JSON.stringify(text)}: ${reason}`);
  let rest = text;
  if (rest.startsWith("-")) {
    throw new RangeError(`Invalid duration ${JSON.stringify(text)}: must not be negative`);
  }
  if (rest.startsWith("+")) rest = rest.slice(1);
  if (rest === "") throw fail("empty");
  // Go accepts a bare zero without a unit, and only that.
  if (rest === "0") return 0;

  let total = 0;
  while (rest !== "") {
    const match = COMPONENT.exec(rest);
    if (match === null) throw fail("expected a number followed by a unit such as 1m or 30s");
    const [whole, number = "", unit = ""] = match;
    if (unit === "") throw fail(`missing unit after ${JSON.stringify(number)}`);
    const factor = UNIT_MS[unit];
    if (factor === undefined) {
      throw fail(`unknown unit ${JSON.stringify(unit)} (use ns, us, ms, s, m or h)`);
    }
    total += Number(number) * factor;
    rest = rest.slice(whole.length);
  }
  if (total > MAX_DURATION_MS) {
    throw new RangeError(
      `Invalid duration ${
        JSON.stringify(text)
      }: longer than Go's longest duration, ${MAX_DURATION_TEXT}`,
    );
  }
  return total;
}
