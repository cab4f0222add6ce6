/**
 * The one error a condition can raise, and the helpers that place it: where
 * in the source (line and column, in characters) and how the offending part
 * is quoted.
 */

/** Longest expression text quoted inside an error message. */
const SNIPPET_LENGTH = 48;
/** Longest value (a pattern, a time, …) quoted whole inside an error message. */
const QUOTE_LENGTH = 80;

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

/** Throws the parse-time `ConditionError` for `source` at `offset`. */
export function parseError(source: string, offset: number, reason: string): never {
  throw new ConditionError(source, offset, reason, "parse");
}

/** The source text of a node, on one line and shortened for an error message. */
export function snippet(source: string, node: { pos: number; end: number }): string {
  const text = source.slice(node.pos, node.end).replace(/\s+/g, " ");
  return text.length > SNIPPET_LENGTH ? `${text.slice(0, SNIPPET_LENGTH - 1)}…` : text;
}

/** A value as an error message quotes it: JSON, shortened when long. */
export function quote(text: string): string {
  return JSON.stringify(text.length > QUOTE_LENGTH ? `${text.slice(0, QUOTE_LENGTH - 1)}…` : text);
}

export function locate(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, offset);
  const lineStart = before.lastIndexOf("\n") + 1;
  return {
    line: before.split("\n").length,
    column: Array.from(source.slice(lineStart, offset)).length + 1,
  };
}
