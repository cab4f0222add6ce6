/**
 * Access Monitoring Rule conditions (`spec.condition`): a parser and an
 * evaluator for the predicate language Teleport evaluates against an access
 * request, without `eval`.
 *
 * Teleport parses a condition with Go's expression syntax (vulcand/predicate
 * runs `go/parser`), types it at parse time (`lib/utils/typical`), and offers
 * the fields of `lib/accessmonitoring/request_mapping.go` and the functions of
 * `lib/expression` `DefaultParserSpec`. This module follows those three:
 * source → tokens → syntax tree → typed closures. Every type mistake is found
 * by `parseCondition`, so a bad rule is reported once; only a value computed
 * at run time (a time or a pattern read from the request) can fail later.
 */
import type { AccessRequest } from "../teleport/types.ts";

/** Longest condition accepted; real rules are a few hundred characters. */
export const MAX_CONDITION_LENGTH = 16_384;
/** Deepest nesting of "(", "[", calls and "!", keeping recursion far from the stack limit. */
export const MAX_NESTING_DEPTH = 100;
/** Compiled regexp.match patterns kept for reuse. */
const REGEXP_CACHE_SIZE = 256;
/** Longest expression text quoted inside an error message. */
const SNIPPET_LENGTH = 48;
/** Go's zero `time.Time` (0001-01-01T00:00:00Z): what Teleport compares when a time is unset. */
const GO_ZERO_TIME_MS = -62_135_596_800_000;
/** Largest integer `strconv.Atoi` accepts on a 64-bit Go build. */
const GO_MAX_INT = 9_223_372_036_854_775_807n;

/** What a condition reads: the request, and the requesting user's traits when the caller has them. */
export interface ConditionEnv {
  request: AccessRequest;
  userTraits?: Readonly<Record<string, readonly string[]>>;
}

const COMPILED: unique symbol = Symbol("compiled condition");

/** A parsed, type-checked condition; evaluate it with `evaluateCondition` as often as needed. */
export interface Condition {
  readonly source: string;
  readonly [COMPILED]: Typed<"boolean">;
}

/** A condition that cannot be parsed, or (rarely) cannot be evaluated; says what and where. */
export class ConditionError extends Error {
  /** The whole condition. */
  readonly source: string;
  /** 1-based line and column (in characters) of the offending part. */
  readonly line: number;
  readonly column: number;
  /** What is wrong, without the location. */
  readonly reason: string;

  constructor(
    source: string,
    offset: number,
    reason: string,
    phase: "parse" | "evaluate",
    options?: ErrorOptions,
  ) {
    const { line, column } = locate(source, offset);
    const where = source.includes("\n") ? `line ${line}, column ${column}` : `column ${column}`;
    super(`Cannot ${phase} condition ${JSON.stringify(source)} at ${where}: ${reason}`, options);
    this.name = "ConditionError";
    this.source = source;
    this.line = line;
    this.column = column;
    this.reason = reason;
  }
}

/** Parses and type-checks `source`; throws `ConditionError` saying what is wrong and where. */
export function parseCondition(source: string): Condition {
  const compiler = new Compiler(source);
  if (source.length > MAX_CONDITION_LENGTH) {
    compiler.parseError(0, `the condition is longer than ${MAX_CONDITION_LENGTH} characters`);
  }
  if (source.trim() === "") compiler.parseError(0, "the condition is empty");
  const parser = new Parser(tokenize(source, compiler), compiler);
  const syntax = parser.expression();
  parser.expectEnd();
  const root = compiler.compile(syntax);
  if (root.type !== "boolean") {
    compiler.parseError(
      syntax.pos,
      `the condition must be a boolean (true or false), but ${compiler.snippet(syntax)} is ${
        a(root.type)
      }`,
    );
  }
  return Object.freeze({ source, [COMPILED]: root as Typed<"boolean"> });
}

/** Whether `cond` holds for the request; throws `ConditionError` when a run-time value is unusable. */
export function evaluateCondition(cond: Condition, env: ConditionEnv): boolean {
  return cond[COMPILED].run({ request: env.request, traits: env.userTraits ?? {} });
}

// ---------------------------------------------------------------------------
// Values and types

type StringMap = Readonly<Record<string, readonly string[]>>;
interface Scope {
  readonly request: AccessRequest;
  readonly traits: StringMap;
}
/** A map of string → set, read one key at a time (a missing key is the empty set). */
type Dict = (key: string) => ReadonlySet<string>;

interface ValueOf {
  boolean: boolean;
  string: string;
  integer: bigint;
  set: ReadonlySet<string>;
  map: Dict;
  time: number;
}
type TypeName = keyof ValueOf;

interface Typed<T extends TypeName = TypeName> {
  readonly type: T;
  readonly pos: number;
  readonly end: number;
  /** The value, when it is a literal known at parse time. */
  readonly literal?: ValueOf[T];
  readonly run: (scope: Scope) => ValueOf[T];
}

const EMPTY_SET: ReadonlySet<string> = new Set();

function dictOf(map: StringMap): Dict {
  return (key) => Object.hasOwn(map, key) ? new Set(map[key]) : EMPTY_SET;
}

function timeOf(date: Date | undefined): number {
  return date ? date.getTime() : GO_ZERO_TIME_MS;
}

/** The fields Teleport's access request condition parser defines (request_mapping.go). */
const FIELDS: ReadonlyMap<string, { type: TypeName; get: (scope: Scope) => unknown }> = new Map<
  string,
  { type: TypeName; get: (scope: Scope) => unknown }
>([
  ["true", { type: "boolean", get: () => true }],
  ["false", { type: "boolean", get: () => false }],
  ["access_request.spec.roles", { type: "set", get: (s) => new Set(s.request.roles) }],
  [
    "access_request.spec.suggested_reviewers",
    { type: "set", get: (s) => new Set(s.request.suggestedReviewers) },
  ],
  [
    "access_request.spec.system_annotations",
    { type: "map", get: (s) => dictOf(s.request.systemAnnotations) },
  ],
  ["access_request.spec.user", { type: "string", get: (s) => s.request.user }],
  ["access_request.spec.request_reason", { type: "string", get: (s) => s.request.requestReason }],
  ["access_request.spec.creation_time", { type: "time", get: (s) => timeOf(s.request.created) }],
  // `AccessRequestV3.Expiry()`: the resource expiry when set, else the request's own expiry.
  [
    "access_request.spec.expiry",
    { type: "time", get: (s) => timeOf(s.request.resourceExpiry ?? s.request.expires) },
  ],
  ["user.traits", { type: "map", get: (s) => dictOf(s.traits) }],
]);

/** Fields some Teleport versions define that need data this plugin does not fetch. */
const UNAVAILABLE_FIELDS: ReadonlySet<string> = new Set([
  "access_request.spec.resource_labels_intersection",
  "access_request.spec.resource_labels_union",
  "access_request.spec.requested_resources",
  "access_request.spec.requested_resources.length",
]);

const FIELD_HINT = "known fields are access_request.spec.{roles, suggested_reviewers, " +
  "system_annotations, user, request_reason, creation_time, expiry} and user.traits";

// ---------------------------------------------------------------------------
// Functions and methods (lib/expression DefaultParserSpec)

interface Builtin {
  /** Parameter types; for a method the first is the receiver. */
  readonly params: readonly (TypeName | readonly TypeName[])[];
  /** Type of any further arguments (variadic). */
  readonly rest?: TypeName;
  /** Result type; "same" is the type of the first argument. */
  readonly result: TypeName | "same";
  /** Computes the result; `fail` reports a value that cannot be used. */
  readonly impl: (args: readonly unknown[], fail: (reason: string) => never) => unknown;
  /** Checks a literal argument at parse time: which one, and what is wrong with it. */
  readonly validate?: (args: readonly Typed[]) => { arg: Typed; problem: string } | undefined;
}

const asSet = (v: unknown) => v as ReadonlySet<string>;
const asString = (v: unknown) => v as string;
const asTime = (v: unknown) => v as number;

function containsAny(set: ReadonlySet<string>, items: ReadonlySet<string>): boolean {
  for (const item of items) if (set.has(item)) return true;
  return false;
}

/** Teleport's contains_all is false for an empty item set. */
function containsAll(set: ReadonlySet<string>, items: ReadonlySet<string>): boolean {
  for (const item of items) if (!set.has(item)) return false;
  return items.size > 0;
}

/** Go's `between`: strictly inside the interval, whichever order its ends are given in. */
function between(t: number, a: number, b: number): boolean {
  const [low, high] = a > b ? [b, a] : [a, b];
  return t > low && t < high;
}

function transform(input: unknown, f: (s: string) => string): unknown {
  return typeof input === "string" ? f(input) : new Set([...asSet(input)].map(f));
}

/** Go maps each character on its own (simple case mapping); JavaScript may expand one into several. */
function mapCharacters(s: string, f: (ch: string) => string): string {
  let out = "";
  for (const ch of s) {
    const mapped = ch === "\u0130" && f === lower ? "i" : f(ch);
    out += [...mapped].length === 1 ? mapped : ch;
  }
  return out;
}
const upper = (ch: string) => ch.toUpperCase();
const lower = (ch: string) => ch.toLowerCase();

/** Go's `strings.ReplaceAll`, including its handling of an empty `match`. */
function replaceAll(s: string, match: string, replacement: string): string {
  if (match !== "") return s.split(match).join(replacement);
  if (s === "") return replacement;
  return replacement + Array.from(s).join(replacement) + replacement;
}

/** `set.contains(value)`; also accepted as `contains(set, value)` (ours: Teleport has only the method). */
const CONTAINS: Builtin = {
  params: ["set", "string"],
  result: "boolean",
  impl: ([s, v]) => asSet(s).has(asString(v)),
};
const CONTAINS_ANY: Builtin = {
  params: ["set", "set"],
  result: "boolean",
  impl: ([s, items]) => containsAny(asSet(s), asSet(items)),
};
const CONTAINS_ALL: Builtin = {
  params: ["set", "set"],
  result: "boolean",
  impl: ([s, items]) => containsAll(asSet(s), asSet(items)),
};
const IS_EMPTY: Builtin = {
  params: ["set"],
  result: "boolean",
  impl: ([s]) => asSet(s).size === 0,
};
const BEFORE: Builtin = {
  params: ["time", "time"],
  result: "boolean",
  impl: ([t, other]) => asTime(t) < asTime(other),
};
const AFTER: Builtin = {
  params: ["time", "time"],
  result: "boolean",
  impl: ([t, other]) => asTime(t) > asTime(other),
};
const BETWEEN: Builtin = {
  params: ["time", "time", "time"],
  result: "boolean",
  impl: ([t, a, b]) => between(asTime(t), asTime(a), asTime(b)),
};

const FUNCTIONS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ["set", {
    params: [],
    rest: "string",
    result: "set",
    impl: (args) => new Set(args.map(asString)),
  }],
  [
    "union",
    {
      params: [],
      rest: "set",
      result: "set",
      impl: (args) => new Set(args.flatMap((s) => [...asSet(s)])),
    },
  ],
  ["contains", CONTAINS],
  ["contains_any", CONTAINS_ANY],
  ["contains_all", CONTAINS_ALL],
  ["is_empty", IS_EMPTY],
  ["before", BEFORE],
  ["after", AFTER],
  ["between", BETWEEN],
  [
    "time.RFC3339",
    {
      params: ["string"],
      result: "time",
      impl: ([text], fail) => {
        try {
          return parseRfc3339(asString(text));
        } catch (error) {
          return fail((error as Error).message);
        }
      },
      validate: ([text]) => literalProblem(text!, parseRfc3339),
    },
  ],
  [
    "regexp.match",
    {
      params: ["set", "string"],
      result: "boolean",
      impl: ([inputs, expression], fail) => {
        let re: RegExp;
        try {
          re = teleportRegexp(asString(expression));
        } catch (error) {
          return fail((error as Error).message);
        }
        for (const input of asSet(inputs)) if (re.test(input)) return true;
        return false;
      },
      validate: ([, expression]) => literalProblem(expression!, teleportRegexp),
    },
  ],
  [
    "strings.upper",
    {
      params: [["string", "set"]],
      result: "same",
      impl: ([input]) => transform(input, (s) => mapCharacters(s, upper)),
    },
  ],
  [
    "strings.lower",
    {
      params: [["string", "set"]],
      result: "same",
      impl: ([input]) => transform(input, (s) => mapCharacters(s, lower)),
    },
  ],
  [
    "strings.replaceall",
    {
      params: [["string", "set"], "string", "string"],
      result: "same",
      impl: ([input, match, replacement]) =>
        transform(input, (s) => replaceAll(s, asString(match), asString(replacement))),
    },
  ],
  [
    "strings.split",
    {
      params: ["set", "string"],
      result: "set",
      impl: ([inputs, sep]) => {
        const separator = asString(sep);
        return new Set(
          [...asSet(inputs)].flatMap((s) => separator === "" ? Array.from(s) : s.split(separator)),
        );
      },
    },
  ],
]);

const METHODS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ["contains", CONTAINS],
  ["contains_any", CONTAINS_ANY],
  ["contains_all", CONTAINS_ALL],
  ["isempty", IS_EMPTY],
  [
    "add",
    {
      params: ["set"],
      rest: "string",
      result: "set",
      impl: ([s, ...values]) => new Set([...asSet(s), ...values.map(asString)]),
    },
  ],
  [
    "remove",
    {
      params: ["set"],
      rest: "string",
      result: "set",
      impl: ([s, ...values]) => {
        const out = new Set(asSet(s));
        for (const v of values) out.delete(asString(v));
        return out;
      },
    },
  ],
  ["before", BEFORE],
  ["after", AFTER],
  ["between", BETWEEN],
]);

/** Teleport functions and methods this plugin does not evaluate (their results are untyped, or need data it lacks). */
const UNSUPPORTED_FUNCTIONS: ReadonlySet<string> = new Set([
  "dict",
  "pair",
  "ifelse",
  "choose",
  "option",
  "email.local",
  "regexp.replace",
  "newer_than",
  "older_than",
  "has_labels",
]);
const UNSUPPORTED_METHODS: ReadonlySet<string> = new Set(["put", "add_values", "has_labels"]);

/** The problem with a literal argument, if it is a literal and has one. */
function literalProblem(
  arg: Typed,
  check: (text: string) => unknown,
): { arg: Typed; problem: string } | undefined {
  if (arg.literal === undefined) return undefined;
  try {
    check(asString(arg.literal));
    return undefined;
  } catch (error) {
    return { arg, problem: (error as Error).message };
  }
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** Go's `time.Parse(time.RFC3339, text)` as epoch milliseconds (sub-millisecond digits are dropped). */
function parseRfc3339(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) {
    throw new Error(
      `time ${JSON.stringify(text)} is not in RFC 3339 form, such as "2024-05-01T10:00:00Z"`,
    );
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const outOfRange = (what: string) =>
    new Error(`time ${JSON.stringify(text)} has its ${what} out of range`);
  if (month < 1 || month > 12) throw outOfRange("month");
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() -
    (month === 2 && !isLeapYear(year) ? 1 : 0);
  if (day < 1 || day > daysInMonth) throw outOfRange("day");
  if (hour > 23) throw outOfRange("hour");
  if (minute > 59) throw outOfRange("minute");
  if (second > 59) throw outOfRange("second");
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const hours = Number(m[10]);
    const minutes = Number(m[11]);
    if (hours > 23 || minutes > 59) throw outOfRange("time zone offset");
    offsetMinutes = (m[9] === "-" ? -1 : 1) * (hours * 60 + minutes);
  }
  const millis = m[7] ? Number((m[7].slice(1) + "00").slice(0, 3)) : 0;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  return date.getTime() - offsetMinutes * 60_000;
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

const regexpCache = new Map<string, RegExp>();

/**
 * Teleport's match expression (`utils.RegexMatchesAny`): a pattern wrapped in
 * "^…$" is a regular expression; anything else is a whole-string glob where
 * only "*" is special.
 */
function teleportRegexp(expression: string): RegExp {
  const cached = regexpCache.get(expression);
  if (cached) return cached;
  const pattern = expression.startsWith("^") && expression.endsWith("$")
    ? re2ToJavaScript(expression)
    : "^" + expression.replace(/[\\.+*?()|[\]{}^$]/g, "\\$&").replaceAll("\\*", "(.*)") + "$";
  let re: RegExp;
  try {
    re = new RegExp(pattern, "u");
  } catch (error) {
    throw new Error(
      `regular expression ${JSON.stringify(expression)} is not valid: ${(error as Error).message}`,
    );
  }
  if (regexpCache.size >= REGEXP_CACHE_SIZE) regexpCache.clear();
  regexpCache.set(expression, re);
  return re;
}

/** Refuses what Go's RE2 refuses but JavaScript would run; renames `(?P<name>`. */
function re2ToJavaScript(expression: string): string {
  const refuse = (what: string) =>
    new Error(
      `regular expression ${JSON.stringify(expression)} uses ${what}, which Go's RE2 lacks`,
    );
  let out = "";
  let inClass = false;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i]!;
    const next = expression[i + 1] ?? "";
    if (c === "\\") {
      if (!inClass && /[1-9k]/.test(next)) throw refuse("a backreference");
      out += c + next;
      i++;
    } else if (inClass) {
      if (c === "]") inClass = false;
      out += c;
    } else if (c === "[") {
      inClass = true;
      out += c;
      if (next === "^") out += expression[++i];
      if (expression[i + 1] === "]") out += expression[++i];
    } else if (c === "(" && next === "?") {
      const rest = expression.slice(i + 2, i + 4);
      if (/^[=!]|^<[=!]/.test(rest)) throw refuse("a lookaround");
      if (rest.startsWith("P<")) {
        out += "(?<";
        i += 3;
      } else out += c;
    } else out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Tokens (Go's scanner, as far as conditions need it)

type TokenKind = "name" | "int" | "string" | "punct" | "newline" | "end";
interface Token {
  readonly kind: TokenKind;
  /** The source text of the token. */
  readonly text: string;
  readonly start: number;
  readonly end: number;
  readonly value?: string;
  readonly int?: bigint;
}

const PUNCTUATION = ["&&", "||", "==", "!=", "!", "(", ")", "[", "]", ",", "."];
const OPERATOR_CHARS = "+-*/%&|^<>=:;{}~";
const NAME = /[\p{L}_][\p{L}\p{Nd}_]*/uy;
const NUMBER = /\.?[0-9][0-9A-Za-z_.]*/y;
const GO_KEYWORDS: ReadonlySet<string> = new Set([
  "break",
  "case",
  "chan",
  "const",
  "continue",
  "default",
  "defer",
  "else",
  "fallthrough",
  "for",
  "func",
  "go",
  "goto",
  "if",
  "import",
  "interface",
  "map",
  "package",
  "range",
  "return",
  "select",
  "struct",
  "switch",
  "type",
  "var",
]);
const ESCAPES: Readonly<Record<string, number>> = {
  a: 7,
  b: 8,
  f: 12,
  n: 10,
  r: 13,
  t: 9,
  v: 11,
  "\\": 92,
  '"': 34,
};

/** Go ends an expression at a line break after a name, a literal, ")" or "]". */
function endsLine(token: Token | undefined): boolean {
  return token !== undefined &&
    (token.kind === "name" || token.kind === "int" || token.kind === "string" ||
      token.text === ")" || token.text === "]");
}

function tokenize(source: string, compiler: Compiler): Token[] {
  const tokens: Token[] = [];
  const fail: (pos: number, reason: string) => never = (pos, reason) =>
    compiler.parseError(pos, reason);
  const lineBreak = (pos: number) => {
    if (endsLine(tokens.at(-1))) tokens.push({ kind: "newline", text: "\n", start: pos, end: pos });
  };
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === "\n") {
      lineBreak(i);
      i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (source.startsWith("//", i)) {
      const newline = source.indexOf("\n", i);
      i = newline === -1 ? source.length : newline;
    } else if (source.startsWith("/*", i)) {
      const close = source.indexOf("*/", i + 2);
      if (close === -1) fail(i, 'comment "/*" is never closed');
      if (source.slice(i, close).includes("\n")) lineBreak(i);
      i = close + 2;
    } else if (c === '"') {
      const { value, end } = readQuoted(source, i, fail);
      tokens.push({ kind: "string", text: source.slice(i, end), start: i, end, value });
      i = end;
    } else if (c === "`") {
      const close = source.indexOf("`", i + 1);
      if (close === -1) fail(i, "string is never closed: a closing ` is missing");
      const value = source.slice(i + 1, close).replaceAll("\r", "");
      tokens.push({
        kind: "string",
        text: source.slice(i, close + 1),
        start: i,
        end: close + 1,
        value,
      });
      i = close + 1;
    } else if (c === "'") {
      fail(
        i,
        "single quotes do not make a string (in Go they hold one character): use double quotes",
      );
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(source[i + 1] ?? ""))) {
      NUMBER.lastIndex = i;
      const text = NUMBER.exec(source)![0];
      tokens.push({ kind: "int", text, start: i, end: i + text.length, int: goInt(text, i, fail) });
      i += text.length;
    } else if (startsName(source, i)) {
      const end = NAME.lastIndex;
      tokens.push({ kind: "name", text: source.slice(i, end), start: i, end });
      i = end;
    } else {
      const punct = PUNCTUATION.find((p) => source.startsWith(p, i));
      if (punct) {
        tokens.push({ kind: "punct", text: punct, start: i, end: i + punct.length });
        i += punct.length;
        continue;
      }
      if (OPERATOR_CHARS.includes(c)) {
        let end = i;
        while (end < source.length && OPERATOR_CHARS.includes(source[end]!)) end++;
        const op = source.slice(i, end);
        if (op === "=") fail(i, '"=" assigns; compare with "=="');
        if (op === "&" || op === "|") fail(i, `"${op}" is not supported; use "${op}${op}"`);
        fail(i, `operator "${op}" is not supported (conditions use &&, ||, !, == and !=)`);
      }
      fail(i, `unexpected character ${describeCharacter(source.codePointAt(i)!)}`);
    }
  }
  tokens.push({ kind: "end", text: "", start: source.length, end: source.length });
  return tokens;
}

/** Whether a name starts at `i`; leaves its end in `NAME.lastIndex`. */
function startsName(source: string, i: number): boolean {
  NAME.lastIndex = i;
  return NAME.test(source);
}

/** A Go integer literal read the way vulcand/predicate does (`strconv.Atoi`). */
function goInt(text: string, pos: number, fail: (pos: number, reason: string) => never): bigint {
  if (!/^[0-9]+$/.test(text)) {
    return fail(pos, `number ${text} is not supported: only decimal integers such as 42 are`);
  }
  if (text.length > 1 && text.startsWith("0") && /[89]/.test(text)) {
    return fail(pos, `number ${text} is not valid: Go reads a leading 0 as octal`);
  }
  const value = BigInt(text);
  if (value > GO_MAX_INT) fail(pos, `number ${text} is too large`);
  return value;
}

/** A double-quoted Go string literal, escapes included. */
function readQuoted(
  source: string,
  start: number,
  fail: (pos: number, reason: string) => never,
): { value: string; end: number } {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  let i = start + 1;
  for (;;) {
    const c = source[i];
    if (c === undefined) fail(start, 'string is never closed: a closing " is missing');
    if (c === "\n") {
      fail(start, 'string is never closed before the line break: a closing " is missing');
    }
    if (c === '"') break;
    if (c !== "\\") {
      const cp = source.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...encoder.encode(ch));
      i += ch.length;
      continue;
    }
    const e = source[i + 1] ?? "";
    const simple = ESCAPES[e];
    if (simple !== undefined) {
      bytes.push(simple);
      i += 2;
    } else if (/[0-7]/.test(e)) {
      const digits = source.slice(i + 1, i + 4);
      const value = parseInt(digits, 8);
      if (!/^[0-7]{3}$/.test(digits) || value > 255) {
        fail(i, `escape "\\${digits}" is not valid: octal escapes have three digits up to \\377`);
      }
      bytes.push(value);
      i += 4;
    } else if (e === "x" || e === "u" || e === "U") {
      const length = e === "x" ? 2 : e === "u" ? 4 : 8;
      const digits = source.slice(i + 2, i + 2 + length);
      if (!new RegExp(`^[0-9A-Fa-f]{${length}}$`).test(digits)) {
        fail(i, `escape "\\${e}" needs ${length} hexadecimal digits`);
      }
      const value = parseInt(digits, 16);
      if (e === "x") bytes.push(value);
      else if (value > 0x10ffff || (value >= 0xd800 && value < 0xe000)) {
        fail(i, `escape "\\${e}${digits}" is not a valid Unicode code point`);
      } else bytes.push(...encoder.encode(String.fromCodePoint(value)));
      i += 2 + length;
    } else {
      fail(i, `escape "\\${e}" is not valid in a Go string`);
    }
  }
  try {
    return {
      value: new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes)),
      end: i + 1,
    };
  } catch {
    return fail(start, "string is not valid UTF-8, so it can never match");
  }
}

function describeCharacter(cp: number): string {
  const ch = String.fromCodePoint(cp);
  return /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(ch)
    ? JSON.stringify(ch)
    : `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

function describeToken(token: Token): string {
  switch (token.kind) {
    case "end":
      return "the end of the condition";
    case "newline":
      return "a line break";
    case "name":
      return `name "${token.text}"`;
    case "string":
      return `string ${token.text}`;
    case "int":
      return `number ${token.text}`;
    case "punct":
      return `"${token.text}"`;
  }
}

// ---------------------------------------------------------------------------
// Syntax (Go's expression grammar, the parts predicate accepts)

type Syntax =
  & { readonly pos: number; readonly end: number }
  & (
    | { readonly kind: "name"; readonly name: string }
    | { readonly kind: "string"; readonly value: string }
    | { readonly kind: "int"; readonly value: bigint }
    | {
      readonly kind: "select";
      readonly target: Syntax;
      readonly name: string;
      readonly namePos: number;
    }
    | {
      readonly kind: "call";
      readonly callee: Syntax;
      readonly args: readonly Syntax[];
      readonly open: number;
    }
    | { readonly kind: "index"; readonly target: Syntax; readonly key: Syntax }
    | { readonly kind: "not"; readonly operand: Syntax }
    | {
      readonly kind: "compare";
      readonly op: "==" | "!=";
      readonly left: Syntax;
      readonly right: Syntax;
      readonly opPos: number;
    }
    | { readonly kind: "logic"; readonly op: "&&" | "||"; readonly operands: readonly Syntax[] }
  );

/**
 * Recursive descent with Go's precedence: unary "!" binds tightest, then
 * "==" / "!=", then "&&", then "||"; binary operators associate to the left.
 */
class Parser {
  readonly #tokens: readonly Token[];
  readonly #compiler: Compiler;
  #at = 0;
  #depth = 0;
  /** The last token consumed. */
  #previous: Token | undefined;

  constructor(tokens: readonly Token[], compiler: Compiler) {
    this.#tokens = tokens;
    this.#compiler = compiler;
  }

  expression(): Syntax {
    return this.#logic("||", () => this.#logic("&&", () => this.#compare()));
  }

  expectEnd(): void {
    const token = this.#peek();
    if (token.kind === "end") return;
    if (token.kind === "newline") this.#lineBreak(token);
    if (token.text === ")" || token.text === "]") {
      const open = token.text === ")" ? "(" : "[";
      this.#fail(token.start, `unexpected "${token.text}" without a matching "${open}"`);
    }
    if (token.kind === "name" || token.kind === "string" || token.kind === "int") {
      this.#fail(
        token.start,
        `unexpected ${describeToken(token)}: an operator such as "&&" or "||" is missing before it`,
      );
    }
    this.#fail(token.start, `unexpected ${describeToken(token)}`);
  }

  #logic(op: "&&" | "||", operand: () => Syntax): Syntax {
    const first = operand();
    if (!this.#sees(op)) return first;
    const operands = [first];
    while (this.#sees(op)) {
      this.#next();
      operands.push(operand());
    }
    return { kind: "logic", op, operands, pos: first.pos, end: this.#end() };
  }

  #compare(): Syntax {
    let left = this.#unary();
    while (this.#sees("==") || this.#sees("!=")) {
      const op = this.#next();
      const right = this.#unary();
      left = {
        kind: "compare",
        op: op.text === "==" ? "==" : "!=",
        left,
        right,
        opPos: op.start,
        pos: left.pos,
        end: right.end,
      };
    }
    return left;
  }

  #unary(): Syntax {
    if (!this.#sees("!")) return this.#postfix();
    const bang = this.#next();
    this.#enter(bang.start);
    const operand = this.#unary();
    this.#depth--;
    return { kind: "not", operand, pos: bang.start, end: operand.end };
  }

  #postfix(): Syntax {
    let node = this.#primary();
    for (;;) {
      if (this.#sees(".")) {
        this.#next();
        const name = this.#next();
        if (name.kind !== "name") {
          this.#fail(name.start, `expected a name after ".", found ${describeToken(name)}`);
        }
        this.#notKeyword(name);
        node = {
          kind: "select",
          target: node,
          name: name.text,
          namePos: name.start,
          pos: node.pos,
          end: name.end,
        };
      } else if (this.#sees("(")) {
        const open = this.#next();
        this.#enter(open.start);
        const args = this.#arguments(open);
        this.#depth--;
        node = {
          kind: "call",
          callee: node,
          args,
          open: open.start,
          pos: node.pos,
          end: this.#end(),
        };
      } else if (this.#sees("[")) {
        const open = this.#next();
        this.#enter(open.start);
        if (this.#sees("]")) {
          this.#fail(open.start, 'empty brackets: a key such as ["team"] is missing');
        }
        const key = this.expression();
        this.#close("]", open);
        this.#depth--;
        node = { kind: "index", target: node, key, pos: node.pos, end: this.#end() };
      } else {
        return node;
      }
    }
  }

  #primary(): Syntax {
    const before = this.#previous;
    const token = this.#next();
    switch (token.kind) {
      case "name":
        this.#notKeyword(token);
        return { kind: "name", name: token.text, pos: token.start, end: token.end };
      case "string":
        return { kind: "string", value: token.value ?? "", pos: token.start, end: token.end };
      case "int":
        return { kind: "int", value: token.int ?? 0n, pos: token.start, end: token.end };
      case "newline":
        return this.#lineBreak(token, before);
      case "end":
        return this.#fail(
          token.start,
          before
            ? `expected an operand after "${before.text}", found the end of the condition`
            : "the condition is empty",
        );
      case "punct": {
        if (token.text !== "(") {
          return this.#fail(token.start, `expected an operand, found ${describeToken(token)}`);
        }
        this.#enter(token.start);
        if (this.#sees(")")) {
          this.#fail(
            token.start,
            'empty parentheses: an expression is missing between "(" and ")"',
          );
        }
        const inner = this.expression();
        this.#close(")", token);
        this.#depth--;
        return inner;
      }
    }
  }

  #arguments(open: Token): Syntax[] {
    const args: Syntax[] = [];
    while (!this.#sees(")")) {
      args.push(this.expression());
      if (!this.#sees(",")) break;
      this.#next(); // Go allows a trailing comma before ")"
    }
    this.#close(")", open);
    return args;
  }

  #close(text: ")" | "]", open: Token): void {
    const token = this.#peek();
    if (token.kind === "punct" && token.text === text) {
      this.#next();
      return;
    }
    if (token.kind === "end") this.#fail(open.start, `"${open.text}" is never closed`);
    if (token.kind === "newline") this.#lineBreak(token);
    const column = locate(this.#compiler.source, open.start).column;
    this.#fail(
      token.start,
      `expected "${text}" to close the "${open.text}" at column ${column}, found ${
        describeToken(token)
      }`,
    );
  }

  #lineBreak(token: Token, before = this.#previous): never {
    const after = before ? ` after ${describeToken(before)}` : "";
    return this.#fail(
      token.start,
      `unexpected line break${after}: in Go syntax a line ending with a name, a literal, ")" ` +
        `or "]" ends the condition; break the line after an operator instead`,
    );
  }

  #notKeyword(token: Token): void {
    if (GO_KEYWORDS.has(token.text)) {
      this.#fail(
        token.start,
        `"${token.text}" is a Go keyword and cannot be a name; index a map with ["${token.text}"]`,
      );
    }
  }

  #enter(pos: number): void {
    if (++this.#depth > MAX_NESTING_DEPTH) {
      this.#fail(pos, `the condition nests deeper than ${MAX_NESTING_DEPTH} levels`);
    }
  }

  /** Skips a line break right before the end: Go consumes that one. */
  #skipFinalLineBreak(): void {
    if (
      this.#tokens[this.#at]?.kind === "newline" && this.#tokens[this.#at + 1]?.kind === "end"
    ) this.#at++;
  }

  #peek(): Token {
    this.#skipFinalLineBreak();
    return this.#tokens[this.#at]!;
  }

  #sees(text: string): boolean {
    const token = this.#peek();
    return token.kind === "punct" && token.text === text;
  }

  #next(): Token {
    const token = this.#peek();
    if (token.kind !== "end") this.#at++;
    this.#previous = token;
    return token;
  }

  /** Where the last consumed token ends. */
  #end(): number {
    return this.#previous?.end ?? 0;
  }

  #fail(pos: number, reason: string): never {
    return this.#compiler.parseError(pos, reason);
  }
}

// ---------------------------------------------------------------------------
// Types and closures (lib/utils/typical)

function a(type: TypeName): string {
  return type === "integer" ? "an integer" : `a ${type}`;
}

class Compiler {
  readonly source: string;

  constructor(source: string) {
    this.source = source;
  }

  parseError(pos: number, reason: string): never {
    throw new ConditionError(this.source, pos, reason, "parse");
  }

  snippet(node: { pos: number; end: number }): string {
    const text = this.source.slice(node.pos, node.end).replace(/\s+/g, " ");
    return text.length > SNIPPET_LENGTH ? `${text.slice(0, SNIPPET_LENGTH - 1)}…` : text;
  }

  compile(node: Syntax): Typed {
    switch (node.kind) {
      case "name":
        return this.#field([node.name], node);
      case "string":
        return this.#literal("string", node.value, node);
      case "int":
        return this.#literal("integer", node.value, node);
      case "select": {
        const path = selectorPath(node);
        if (!path) {
          this.parseError(
            node.namePos,
            `".${node.name}" cannot follow ${this.snippet(node.target)}: only fields have parts, ` +
              `and a method needs "(…)"`,
          );
        }
        return this.#field(path, node);
      }
      case "index": {
        const target = this.#want(this.compile(node.target), "map", '"[…]"');
        const key = this.#want(this.compile(node.key), "string", "a map key");
        return {
          type: "set",
          pos: node.pos,
          end: node.end,
          run: (scope) => target.run(scope)(key.run(scope)),
        };
      }
      case "call":
        return this.#call(node);
      case "not": {
        const operand = this.#want(this.compile(node.operand), "boolean", '"!"');
        return { type: "boolean", pos: node.pos, end: node.end, run: (s) => !operand.run(s) };
      }
      case "compare":
        return this.#compare(node);
      case "logic": {
        const operands = node.operands.map((o) =>
          this.#want(this.compile(o), "boolean", `"${node.op}"`)
        );
        const run = node.op === "&&"
          ? (s: Scope) => operands.every((o) => o.run(s))
          : (s: Scope) => operands.some((o) => o.run(s));
        return { type: "boolean", pos: node.pos, end: node.end, run };
      }
    }
  }

  #literal<T extends TypeName>(type: T, value: ValueOf[T], node: Syntax): Typed<T> {
    return { type, pos: node.pos, end: node.end, literal: value, run: () => value };
  }

  /** Teleport's getIdentifier: the longest known prefix, then `map.key` for one more part. */
  #field(path: readonly string[], node: Syntax): Typed {
    let joined = "";
    for (let i = 0; i < path.length; i++) {
      joined = i === 0 ? path[0]! : `${joined}.${path[i]}`;
      if (UNAVAILABLE_FIELDS.has(joined)) {
        this.parseError(
          node.pos,
          `field "${joined}" is not supported by this plugin: it needs the requested resources, ` +
            "which the email plugin does not look up",
        );
      }
      const field = FIELDS.get(joined);
      if (!field) continue;
      const rest = path.length - i - 1;
      const get = field.get;
      if (rest === 0) {
        return { type: field.type, pos: node.pos, end: node.end, run: get as Typed["run"] };
      }
      if (rest === 1 && field.type === "map") {
        const key = path[i + 1]!;
        return { type: "set", pos: node.pos, end: node.end, run: (s) => (get(s) as Dict)(key) };
      }
    }
    const name = path.join(".");
    return this.parseError(
      node.pos,
      path.length === 1 ? `unknown name "${name}"` : `unknown field "${name}" (${FIELD_HINT})`,
    );
  }

  #compare(node: Extract<Syntax, { kind: "compare" }>): Typed<"boolean"> {
    const left = this.compile(node.left);
    const right = this.compile(node.right);
    if (left.type !== "string" && left.type !== "integer") {
      this.parseError(
        node.opPos,
        `"${node.op}" compares strings or integers, but ${this.snippet(node.left)} is ${
          a(left.type)
        }`,
      );
    }
    if (right.type !== left.type) {
      this.parseError(
        node.right.pos,
        `the right side of "${node.op}" must be ${a(left.type)} like the left side, but ${
          this.snippet(node.right)
        } is ${a(right.type)}`,
      );
    }
    const equal = node.op === "==";
    return {
      type: "boolean",
      pos: node.pos,
      end: node.end,
      run: (s) => (left.run(s) === right.run(s)) === equal,
    };
  }

  /** predicate's call rules: a registered method name wins, else `name(…)` or `module.name(…)`. */
  #call(node: Extract<Syntax, { kind: "call" }>): Typed {
    const callee = node.callee;
    if (callee.kind === "select") {
      const method = METHODS.get(callee.name);
      if (method) {
        return this.#apply(
          `method "${callee.name}"`,
          method,
          [callee.target, ...node.args],
          node,
          true,
        );
      }
      if (UNSUPPORTED_METHODS.has(callee.name)) {
        this.parseError(callee.namePos, `method "${callee.name}" is not supported by this plugin`);
      }
      if (callee.target.kind !== "name") {
        this.parseError(callee.namePos, `unknown method "${callee.name}"`);
      }
    } else if (callee.kind !== "name") {
      this.parseError(
        node.open,
        `only functions and methods can be called, not ${this.snippet(callee)}`,
      );
    }
    const name = functionName(callee);
    const builtin = FUNCTIONS.get(name);
    if (builtin) return this.#apply(`function "${name}"`, builtin, node.args, node, false);
    if (UNSUPPORTED_FUNCTIONS.has(name)) {
      this.parseError(callee.pos, `function "${name}" is not supported by this plugin`);
    }
    return this.parseError(callee.pos, `unknown function "${name}"`);
  }

  #apply(
    label: string,
    builtin: Builtin,
    argNodes: readonly Syntax[],
    node: Syntax,
    isMethod: boolean,
  ): Typed {
    const shown = (n: number) => n - (isMethod ? 1 : 0);
    const fixed = builtin.params.length;
    if (builtin.rest ? argNodes.length < fixed : argNodes.length !== fixed) {
      const count = shown(fixed);
      const wanted = builtin.rest ? `at least ${count}` : `${count}`;
      this.parseError(
        node.pos,
        `${label} takes ${wanted} argument${count === 1 ? "" : "s"}, but ${
          shown(argNodes.length)
        } ${shown(argNodes.length) === 1 ? "is" : "are"} given`,
      );
    }
    const args = argNodes.map((argNode, i) => {
      const arg = this.compile(argNode);
      const allowed = builtin.params[i] ?? builtin.rest!;
      const types: readonly TypeName[] = typeof allowed === "string" ? [allowed] : allowed;
      if (!types.includes(arg.type)) {
        const role = isMethod && i === 0
          ? `the receiver of ${label}`
          : `argument ${shown(i + 1)} of ${label}`;
        this.parseError(
          arg.pos,
          `${role} must be ${types.map(a).join(" or ")}, but ${this.snippet(argNode)} is ${
            a(arg.type)
          }`,
        );
      }
      return arg;
    });
    const invalid = builtin.validate?.(args);
    if (invalid) this.parseError(invalid.arg.pos, invalid.problem);
    const type = builtin.result === "same" ? args[0]!.type : builtin.result;
    const runs = args.map((arg) => arg.run);
    const fail = (reason: string): never => {
      throw new ConditionError(this.source, node.pos, reason, "evaluate");
    };
    return {
      type,
      pos: node.pos,
      end: node.end,
      run: (scope) => builtin.impl(runs.map((run) => run(scope)), fail) as never,
    };
  }

  #want<T extends TypeName>(typed: Typed, type: T, what: string): Typed<T> {
    if (typed.type !== type) {
      this.parseError(
        typed.pos,
        `${what} needs ${a(type)}, but ${this.snippet(typed)} is ${a(typed.type)}`,
      );
    }
    return typed as Typed<T>;
  }
}

/** `name` or `module.name` of a called function (its shape is checked by the caller). */
function functionName(callee: Syntax): string {
  if (callee.kind === "name") return callee.name;
  if (callee.kind === "select" && callee.target.kind === "name") {
    return `${callee.target.name}.${callee.name}`;
  }
  return "";
}

/** The names of a field selector (`a.b.c`), or undefined when it starts from something else. */
function selectorPath(node: Syntax): string[] | undefined {
  if (node.kind === "name") return [node.name];
  if (node.kind !== "select") return undefined;
  const head = selectorPath(node.target);
  return head && [...head, node.name];
}

function locate(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, offset);
  const lineStart = before.lastIndexOf("\n") + 1;
  return {
    line: before.split("\n").length,
    column: Array.from(source.slice(lineStart, offset)).length + 1,
  };
}
