/**
 * Tokens of a condition, read the way Go's scanner reads an expression
 * (vulcand/predicate hands the condition to `go/parser.ParseExpr`): names,
 * decimal integers and floats (`strconv.Atoi` / `strconv.ParseFloat`),
 * interpreted and raw strings with Go's escapes, the operators predicate
 * knows, comments, and Go's rule that a line break after a name, a literal,
 * ")" or "]" ends the expression.
 */

/** Largest integer `strconv.Atoi` accepts on a 64-bit Go build. */
const GO_MAX_INT = 9_223_372_036_854_775_807n;

export type TokenKind = "name" | "int" | "float" | "string" | "punct" | "newline" | "end";
export interface Token {
  readonly kind: TokenKind;
  /** The source text of the token. */
  readonly text: string;
  readonly start: number;
  readonly end: number;
  readonly value?: string;
  readonly int?: bigint;
  readonly float?: number;
}

export type Fail = (pos: number, reason: string) => never;

const PUNCTUATION = ["&&", "||", "==", "!=", "!", "(", ")", "[", "]", ",", "."];
const OPERATOR_CHARS = "+-*/%&|^<>=:;{}~";
const NAME = /[\p{L}_][\p{L}\p{Nd}_]*/uy;
/** Go's number token, generously: digits, letters, "_", "." and an exponent's sign. */
const NUMBER = /\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.])*/y;
/** The float forms `strconv.ParseFloat` reads that a condition may meet (decimal only). */
const DECIMAL_FLOAT = /^(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$|^[0-9]+[eE][+-]?[0-9]+$/;
export const GO_KEYWORDS: ReadonlySet<string> = new Set([
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
    (token.kind === "name" || token.kind === "int" || token.kind === "float" ||
      token.kind === "string" || token.text === ")" || token.text === "]");
}

export function tokenize(source: string, fail: Fail): Token[] {
  const tokens: Token[] = [];
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
      const end = i + text.length;
      if (DECIMAL_FLOAT.test(text)) {
        tokens.push({ kind: "float", text, start: i, end, float: Number(text) });
      } else {
        tokens.push({ kind: "int", text, start: i, end, int: goInt(text, i, fail) });
      }
      i = end;
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
function goInt(text: string, pos: number, fail: Fail): bigint {
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
function readQuoted(source: string, start: number, fail: Fail): { value: string; end: number } {
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

export function describeToken(token: Token): string {
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
    case "float":
      return `number ${token.text}`;
    case "punct":
      return `"${token.text}"`;
  }
}
