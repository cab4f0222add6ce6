/**
 * Regular expressions with Go's RE2 semantics, in linear time, on re2js (a
 * port of RE2/J): compiling with Go's syntax and limits, Teleport's match
 * expressions (`utils.RegexMatchesAny`: "^…$" is a regular expression,
 * anything else a glob), and Go's `Regexp.ReplaceAllString` with its `$`
 * template, as `parse.RegexpReplace` uses it.
 *
 * Every match charges the evaluation budget its worst case (input length ×
 * program size) before it runs; compiling is bounded by refusing programs
 * larger than `MAX_REGEXP_SIZE` instructions, estimated before compiling.
 */
import { RE2JS } from "re2js";
import type { Budget } from "./_budget.ts";
import { COMPILE_STEPS_PER_INSTRUCTION } from "./_budget.ts";
import { quote } from "./_error.ts";
import { globMatches, globNeedsRegexp, globToRegexp } from "./_glob.ts";

/** Largest program one pattern may compile to (RE2 instructions; compiling it takes ≈60 ms). */
export const MAX_REGEXP_SIZE = 5_000;
/** Compiled patterns kept for reuse (Teleport keeps 1000; ours are bounded by size). */
const REGEXP_CACHE_SIZE = 256;
/** Steps charged per call for the fixed work of starting a match. */
const MATCH_OVERHEAD_STEPS = 16;

export interface GoRegexp {
  readonly pattern: string;
  readonly re: RE2JS;
  /** RE2 instructions: the per-character cost of a match. */
  readonly size: number;
  /** Capture group names → index (`Regexp.SubexpNames`). */
  readonly names: Readonly<Record<string, number>>;
}

const cache = new Map<string, GoRegexp>();

/**
 * Go's `regexp.Compile(pattern)`: throws an `Error` saying why the pattern
 * cannot be used. With a budget (a pattern only known when evaluating), the
 * compile is charged to it.
 */
export function compileGoRegexp(pattern: string, budget?: Budget): GoRegexp {
  const estimate = checkPattern(pattern);
  budget?.charge(estimate * COMPILE_STEPS_PER_INSTRUCTION);
  const cached = cache.get(pattern);
  if (cached) {
    cache.delete(pattern);
    cache.set(pattern, cached);
    return cached;
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (error) {
    throw new Error(
      `regular expression ${quote(pattern)} is not valid: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const compiled: GoRegexp = {
    pattern,
    re,
    size: Math.max(1, re.programSize()),
    names: re.namedGroups() as Record<string, number>,
  };
  if (cache.size >= REGEXP_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(pattern, compiled);
  return compiled;
}

/**
 * Refuses what Go's RE2 refuses with a clearer word than the parser's
 * (lookarounds, backreferences), and patterns too large to compile quickly;
 * returns the estimated program size.
 */
export function checkPattern(pattern: string): number {
  const refuse = (what: string) =>
    new Error(`regular expression ${quote(pattern)} uses ${what}, which Go's RE2 lacks`);
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    const next = pattern[i + 1] ?? "";
    if (c === "\\") {
      if (next === "Q") {
        const end = pattern.indexOf("\\E", i + 2);
        i = end === -1 ? pattern.length : end + 1;
        continue;
      }
      // "\1" to "\9" are backreferences unless an octal digit follows ("\12" is octal).
      const octal = /[1-7]/.test(next) && /[0-7]/.test(pattern[i + 2] ?? "");
      if (!inClass && /[1-9k]/.test(next) && !octal) throw refuse("a backreference");
      i++;
    } else if (inClass) {
      if (c === "[" && next === ":") {
        const end = pattern.indexOf(":]", i + 2);
        if (end !== -1) i = end + 1;
      } else if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
      if (next === "^") i++;
      if (pattern[i + 1] === "]") i++;
    } else if (c === "(" && next === "?") {
      if (/^[=!]|^<[=!]/.test(pattern.slice(i + 2, i + 4))) throw refuse("a lookaround");
    }
  }
  const size = estimateProgramSize(pattern);
  if (size > MAX_REGEXP_SIZE) {
    throw new Error(
      `regular expression ${quote(pattern)} is too large: it compiles to about ${size} ` +
        `instructions, and this plugin allows ${MAX_REGEXP_SIZE}`,
    );
  }
  return size;
}

interface Frame {
  /** Size of the alternatives closed so far, plus one instruction per "|". */
  closed: number;
  /** Size of the current alternative. */
  sum: number;
  /** Size of the last atom, which a repetition applies to. */
  last: number;
  readonly capture: boolean;
}

/**
 * An upper bound on the instructions RE2 compiles `pattern` to, without
 * compiling it: a literal, a class or an assertion is one instruction, a
 * capture adds two, each "|" and each `*`, `+` or `?` one, and `x{n,m}` is
 * expanded the way RE2's simplifier does (n copies, then m−n optional ones).
 * Invalid patterns get an estimate too; the compiler reports them.
 */
export function estimateProgramSize(pattern: string): number {
  const frames: Frame[] = [{ closed: 0, sum: 0, last: 0, capture: false }];
  const top = () => frames[frames.length - 1]!;
  const atom = (size: number) => {
    const f = top();
    f.sum += size;
    f.last = size;
  };
  const repeat = (min: number, max: number | undefined) => {
    const f = top();
    const inner = Math.max(f.last, 1);
    const expanded = max === undefined
      ? Math.max(min, 1) * inner + 1
      : min * inner + (max - min) * (inner + 1);
    f.sum += expanded - f.last;
    f.last = expanded;
  };
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "\\") {
      i = skipEscape(pattern, i, (n) => atom(n));
    } else if (c === "[") {
      i = skipClass(pattern, i);
      atom(1);
    } else if (c === "(") {
      if (pattern.startsWith("(?", i)) {
        const named = /^\(\?P?<[^>]*>/.exec(pattern.slice(i, i + 256));
        if (named) {
          frames.push({ closed: 0, sum: 0, last: 0, capture: true });
          i += named[0].length;
          continue;
        }
        let j = i + 2;
        while (j < pattern.length && /[A-Za-z-]/.test(pattern[j]!)) j++;
        if (pattern[j] === ")") {
          i = j + 1; // flags only: (?i)
          continue;
        }
        frames.push({ closed: 0, sum: 0, last: 0, capture: false });
        i = pattern[j] === ":" ? j + 1 : j;
        continue;
      }
      frames.push({ closed: 0, sum: 0, last: 0, capture: true });
      i++;
    } else if (c === ")") {
      if (frames.length > 1) {
        const f = frames.pop()!;
        atom(f.closed + f.sum + (f.capture ? 2 : 0));
      } else atom(1);
      i++;
    } else if (c === "|") {
      const f = top();
      f.closed += f.sum + 1;
      f.sum = 0;
      f.last = 0;
      i++;
    } else if (c === "*" || c === "+" || c === "?") {
      repeat(c === "+" ? 1 : 0, c === "*" || c === "+" ? undefined : 1);
      i += pattern[i + 1] === "?" ? 2 : 1;
    } else if (c === "{") {
      const m = /^\{(\d{1,9})(,(\d{0,9}))?\}/.exec(pattern.slice(i, i + 24));
      if (m) {
        const min = Number(m[1]);
        repeat(min, m[2] === undefined ? min : m[3] === "" ? undefined : Number(m[3]));
        i += m[0].length + (pattern[i + m[0].length] === "?" ? 1 : 0);
      } else {
        atom(1);
        i++;
      }
    } else {
      atom(1);
      i += c.length;
    }
  }
  while (frames.length > 1) {
    const f = frames.pop()!;
    atom(f.closed + f.sum + (f.capture ? 2 : 0));
  }
  const root = frames[0]!;
  // Match, Fail and the unanchored prefix are a few more.
  return root.closed + root.sum + 8;
}

/** Skips the escape at `i` (a literal, a class or `\Q…\E`), reporting its size; returns the next index. */
function skipEscape(pattern: string, i: number, size: (n: number) => void): number {
  const e = pattern[i + 1] ?? "";
  if (e === "Q") {
    const end = pattern.indexOf("\\E", i + 2);
    const stop = end === -1 ? pattern.length : end;
    for (let k = i + 2; k < stop; k++) size(1);
    return end === -1 ? pattern.length : end + 2;
  }
  size(1);
  if ((e === "p" || e === "P" || e === "x") && pattern[i + 2] === "{") {
    const end = pattern.indexOf("}", i + 3);
    return end === -1 ? pattern.length : end + 1;
  }
  if (e === "p" || e === "P") return i + 3;
  if (e === "x") return i + 4;
  return i + 1 + Math.max(1, e.length);
}

/** Skips the character class starting at `i`; returns the index after its "]". */
function skipClass(pattern: string, i: number): number {
  let j = i + 1;
  if (pattern[j] === "^") j++;
  if (pattern[j] === "]") j++;
  while (j < pattern.length && pattern[j] !== "]") {
    if (pattern[j] === "\\") j = skipEscape(pattern, j, () => {});
    else if (pattern.startsWith("[:", j)) {
      const end = pattern.indexOf(":]", j + 2);
      j = end === -1 ? j + 1 : end + 2;
    } else j++;
  }
  return j + 1;
}

/** Whether Teleport reads `expression` as a regular expression rather than a glob. */
export function isRegexpExpression(expression: string): boolean {
  return expression.startsWith("^") && expression.endsWith("$");
}

/**
 * Teleport's `utils.RegexMatchesAny(inputs, expression)`: whether any input
 * matches. A regular expression ("^…$") is searched for as Go's
 * `MatchString` does; anything else is a whole-string glob in which only
 * "*" is special and matches any run of characters but a line break.
 */
export function matchesAny(
  inputs: Iterable<string>,
  expression: string,
  budget: Budget,
  known?: GoRegexp,
): boolean {
  const regexp = isRegexpExpression(expression);
  if (!regexp && !globNeedsRegexp(expression)) {
    for (const input of inputs) {
      budget.charge(input.length + expression.length + MATCH_OVERHEAD_STEPS);
      if (globMatches(input, expression)) return true;
    }
    return false;
  }
  const compiled = known ?? compileGoRegexp(regexp ? expression : globToRegexp(expression), budget);
  for (const input of inputs) {
    budget.charge((input.length + 1) * compiled.size + MATCH_OVERHEAD_STEPS);
    if (compiled.re.test(input)) return true;
  }
  return false;
}

/**
 * Go's `re.ReplaceAllString(input, template)`: every leftmost match, empty
 * ones too (but not one right after a match), replaced by the template with
 * `$1`, `${1}`, `$name`, `${name}` and `$$` expanded.
 */
export function replaceAllString(
  compiled: GoRegexp,
  input: string,
  template: string,
  budget: Budget,
): string {
  const matcher = compiled.re.matcher(input);
  let out = "";
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= input.length) {
    // A search may scan the rest of the input before it settles on a match.
    budget.charge((input.length - searchPos + 1) * compiled.size + MATCH_OVERHEAD_STEPS);
    if (!matcher.find(searchPos)) break;
    const start = matcher.start();
    const end = matcher.end();
    budget.charge(start - lastMatchEnd);
    out += input.slice(lastMatchEnd, start);
    if (end > lastMatchEnd || start === 0) {
      const expanded = expand(template, compiled, matcher, input);
      budget.charge(expanded.length);
      out += expanded;
    }
    lastMatchEnd = end;
    const width = searchPos < input.length
      ? String.fromCodePoint(input.codePointAt(searchPos)!).length
      : 0;
    if (searchPos + width > end) searchPos += width;
    else if (searchPos + 1 > end) searchPos++;
    else searchPos = end;
  }
  budget.charge(input.length - lastMatchEnd);
  return out + input.slice(lastMatchEnd);
}

interface Groups {
  start(group: number): number;
  end(group: number): number;
}

/** Go's `Regexp.expand` of a `ReplaceAllString` template for one match. */
function expand(template: string, compiled: GoRegexp, match: Groups, input: string): string {
  let out = "";
  let rest = template;
  const group = (index: number) => {
    const start = match.start(index);
    return start >= 0 ? input.slice(start, match.end(index)) : "";
  };
  const groupCount = compiled.re.groupCount();
  for (;;) {
    const dollar = rest.indexOf("$");
    if (dollar === -1) break;
    out += rest.slice(0, dollar);
    rest = rest.slice(dollar + 1);
    if (rest.startsWith("$")) {
      out += "$";
      rest = rest.slice(1);
      continue;
    }
    const ref = extractName(rest);
    if (!ref) {
      out += "$"; // malformed: the "$" stays as text
      continue;
    }
    rest = ref.rest;
    if (ref.num >= 0) {
      if (ref.num <= groupCount) out += group(ref.num);
    } else if (Object.hasOwn(compiled.names, ref.name)) {
      out += group(compiled.names[ref.name]!);
    }
  }
  return out + rest;
}

const NAME_CHARACTER = /[\p{L}\p{Nd}_]/u;

/** Go's `extract`: a leading `name` or `{name}` after a "$", and its number when it is one. */
function extractName(text: string): { name: string; num: number; rest: string } | undefined {
  const brace = text.startsWith("{");
  const body = brace ? text.slice(1) : text;
  let i = 0;
  for (const ch of body) {
    if (!NAME_CHARACTER.test(ch)) break;
    i += ch.length;
  }
  if (i === 0) return undefined;
  const name = body.slice(0, i);
  if (brace) {
    if (body[i] !== "}") return undefined;
    i++;
  }
  let num = /^[0-9]+$/.test(name) && name.length <= 9 ? Number(name) : -1;
  if (name.length > 1 && name.startsWith("0")) num = -1;
  return { name, num, rest: body.slice(i) };
}
