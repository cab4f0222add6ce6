/**
 * The values a condition computes with, as Teleport's typed predicate
 * library (`lib/utils/typical`) and `lib/expression` define them: booleans,
 * strings, integers, sets of strings (`expression.Set`), maps from a string
 * to a set (`expression.Dict`), times, pairs and options (the arguments of
 * `dict` and `choose`), the requested resources, and the floats Go's
 * scanner reads. Each value knows its type at run time, because a function
 * typed `any` (ifelse, choose, remove, strings.*) defers the check to then.
 */

/** A type a value has at run time. */
export type ValueType =
  | "boolean"
  | "string"
  | "integer"
  | "float"
  | "set"
  | "map"
  | "time"
  | "pair"
  | "option"
  | "resources";

/** A type known when parsing: a value type, or `any` (checked when evaluated). */
export type StaticType = ValueType | "any";

/** `expression.Set`: immutable once built. */
export type StringSet = ReadonlySet<string>;
/** `expression.Dict`: a missing key reads as the empty set. */
export type Dict = ReadonlyMap<string, StringSet>;

/** A Go `time.Time`: an instant in nanoseconds and the zone offset it was written with. */
export class GoTime {
  readonly ns: bigint;
  /** Seconds east of UTC; decides the weekday `day()` names. */
  readonly offset: number;

  constructor(ns: bigint, offset = 0) {
    this.ns = ns;
    this.offset = offset;
  }

  static fromDate(date: Date | undefined): GoTime {
    return date ? new GoTime(BigInt(date.getTime()) * 1_000_000n) : GO_ZERO_TIME;
  }
}

/** Go's zero `time.Time` (0001-01-01T00:00:00Z): what Teleport compares when a time is unset. */
export const GO_ZERO_TIME = new GoTime(-62_135_596_800n * 1_000_000_000n);

/** `pair(a, b)`: one entry for `dict`. */
export class Pair {
  constructor(readonly first: Value, readonly second: Value) {}
}

/** `option(condition, value)`: one branch for `choose`. */
export class Option {
  constructor(readonly condition: boolean, readonly value: Value) {}
}

/** A requested resource as `has_labels` sees it: its labels. */
export interface LabeledResource {
  readonly labels: Readonly<Record<string, string>>;
}

/** `access_request.spec.requested_resources`. */
export class Resources {
  constructor(readonly items: readonly LabeledResource[]) {}
}

export type Value =
  | boolean
  | string
  | bigint
  | number
  | StringSet
  | Dict
  | GoTime
  | Pair
  | Option
  | Resources;

export const EMPTY_SET: StringSet = new Set();

export function typeOf(value: Value): ValueType {
  switch (typeof value) {
    case "boolean":
      return "boolean";
    case "string":
      return "string";
    case "bigint":
      return "integer";
    case "number":
      return "float";
  }
  if (value instanceof Set) return "set";
  if (value instanceof Map) return "map";
  if (value instanceof GoTime) return "time";
  if (value instanceof Pair) return "pair";
  if (value instanceof Option) return "option";
  return "resources";
}

const ARTICLES: Readonly<Record<StaticType, string>> = {
  boolean: "a boolean",
  string: "a string",
  integer: "an integer",
  float: "a decimal number",
  set: "a set",
  map: "a map",
  time: "a time",
  pair: "a pair",
  option: "an option",
  resources: "a list of resources",
  any: "a value known only when evaluated",
};

/** "a set", "an integer", …: a type as an error message names it. */
export function a(type: StaticType): string {
  return ARTICLES[type];
}
