/**
 * Teleport's globs, matched in linear time. Teleport turns a glob into a
 * regular expression (`utils.GlobToRegexp`: quote everything, then each
 * "*" becomes "(.*)", anchored with "^…$"), so a glob matches the whole
 * string, "*" is the only wildcard, and — since Go's "." stops at a line
 * break — a "*" never spans a "\n".
 *
 * Between wildcards the literal parts are found left to right, each at its
 * earliest place: when no part holds a line break that choice is always
 * right, and each character is looked at a bounded number of times. A glob
 * whose literal parts hold a line break (rare) is left to RE2
 * (`globToRegexp`).
 */

/** Whether the linear matcher cannot decide `glob` (a literal part holds a line break). */
export function globNeedsRegexp(glob: string): boolean {
  return glob.includes("*") && glob.includes("\n");
}

/** Teleport's `"^" + utils.GlobToRegexp(glob) + "$"`. */
export function globToRegexp(glob: string): string {
  return "^" + glob.split("*").map(quoteMeta).join("(.*)") + "$";
}

/** Whether `input` matches `glob` as a whole; `glob` must not need RE2 (`globNeedsRegexp`). */
export function globMatches(input: string, glob: string): boolean {
  const parts = glob.split("*");
  if (parts.length === 1) return input === glob;
  // No part holds a line break and no "*" spans one, so no match can hold one.
  if (input.includes("\n")) return false;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const tail = input.length - last.length;
  if (tail < first.length || !input.startsWith(first) || !input.endsWith(last)) return false;
  let pos = first.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i]!;
    if (part === "") continue;
    const at = input.indexOf(part, pos);
    if (at === -1 || at + part.length > tail) return false;
    pos = at + part.length;
  }
  return true;
}

/** Go's `regexp.QuoteMeta`. */
export function quoteMeta(text: string): string {
  return text.replace(/[\\.+*?()|[\]{}^$]/g, "\\$&");
}
