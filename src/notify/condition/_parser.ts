/**
 * The syntax tree of a condition: Go's expression grammar, the parts
 * vulcand/predicate accepts (names and selectors, literals, calls, index
 * expressions, "!", "==", "!=", "&&", "||" and parentheses), parsed by
 * recursive descent with Go's precedence.
 */
import { describeToken, type Fail, GO_KEYWORDS, type Token } from "./_lexer.ts";
import { locate } from "./_error.ts";

/** Deepest nesting of "(", "[", calls and "!", keeping recursion far from the stack limit. */
export const MAX_NESTING_DEPTH = 100;

export type Syntax =
  & { readonly pos: number; readonly end: number }
  & (
    | { readonly kind: "name"; readonly name: string }
    | { readonly kind: "string"; readonly value: string }
    | { readonly kind: "int"; readonly value: bigint }
    | { readonly kind: "float"; readonly value: number; readonly text: string }
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

/** Parses the whole token list into one expression; `fail` reports a syntax error. */
export function parse(source: string, tokens: readonly Token[], fail: Fail): Syntax {
  const parser = new Parser(source, tokens, fail);
  const syntax = parser.expression();
  parser.expectEnd();
  return syntax;
}

/**
 * Recursive descent with Go's precedence: unary "!" binds tightest, then
 * "==" / "!=", then "&&", then "||"; binary operators associate to the left.
 */
class Parser {
  readonly #source: string;
  readonly #tokens: readonly Token[];
  readonly #onError: Fail;
  #at = 0;
  #depth = 0;
  /** The last token consumed. */
  #previous: Token | undefined;

  constructor(source: string, tokens: readonly Token[], fail: Fail) {
    this.#source = source;
    this.#tokens = tokens;
    this.#onError = fail;
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
    if (
      token.kind === "name" || token.kind === "string" || token.kind === "int" ||
      token.kind === "float"
    ) {
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
      case "float":
        return {
          kind: "float",
          value: token.float ?? 0,
          text: token.text,
          pos: token.start,
          end: token.end,
        };
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
    const column = locate(this.#source, open.start).column;
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
    return this.#onError(pos, reason);
  }
}
