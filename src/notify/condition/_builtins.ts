/**
 * The functions and methods a condition may call: Teleport's
 * `expression.DefaultParserSpec` (lib/expression/parser.go) plus what the
 * access monitoring rule parser adds (lib/accessmonitoring/
 * request_mapping.go: `day`, `clock_between`, and `has_labels` in the
 * releases that had it), each with Teleport's parameter types, arity and
 * results. A parameter typed `any` in Teleport is `any` here too: its type
 * is checked when the call is evaluated, as Teleport does.
 */
import type { Budget } from "./_budget.ts";
import { emailLocal } from "./_mail.ts";
import {
  compileGoRegexp,
  type GoRegexp,
  isRegexpExpression,
  matchesAny,
  replaceAllString,
} from "./_regexp.ts";
import { globNeedsRegexp, globToRegexp } from "./_glob.ts";
import { compareSemver, parseSemver } from "./_semver.ts";
import { clockBetween, parseRfc3339, weekday } from "./_time.ts";
import {
  a,
  type Dict,
  GoTime,
  Option,
  Pair,
  Resources,
  type StaticType,
  type StringSet,
  typeOf,
  type Value,
  type ValueType,
} from "./_values.ts";

/** A parameter: one type, `any`, or one of several value types. */
export type Param = StaticType | readonly ValueType[];

/** What a literal argument looks like to `prepare`. */
export interface Argument {
  readonly type: StaticType;
  readonly literal?: Value;
}

export interface Preparation {
  /** Refuses a literal argument that can never work. */
  problem(arg: number, reason: string): never;
  /** Counts a literal regular expression's size against the condition's total. */
  regexp(arg: number, size: number): void;
}

export interface Call {
  readonly budget: Budget;
  /** What `prepare` returned when parsing. */
  readonly prepared: unknown;
}

export interface Builtin {
  /** Parameter types; for a method the first is the receiver. */
  readonly params: readonly Param[];
  /** Type of any further arguments (variadic). */
  readonly rest?: Param;
  readonly result: StaticType;
  /** Computes the result; throws an `Error` saying what is wrong with a value. */
  readonly impl: (args: readonly Value[], call: Call) => Value;
  /** Checks literal arguments when parsing, and keeps what evaluation can reuse. */
  readonly prepare?: (args: readonly Argument[], prep: Preparation) => unknown;
}

const asSet = (v: Value) => v as StringSet;
const asDict = (v: Value) => v as Dict;
const asString = (v: Value) => v as string;
const asTime = (v: Value) => v as GoTime;

function setSize(values: Iterable<Value>): number {
  let n = 0;
  for (const v of values) n += asSet(v).size;
  return n;
}

function dictSize(d: Dict): number {
  let n = d.size;
  for (const set of d.values()) n += set.size;
  return n;
}

/** `StringTransform`: a string, or each element of a set; anything else is refused. */
function transform(name: string, input: Value, budget: Budget, f: (s: string) => string): Value {
  if (typeof input === "string") {
    budget.charge(input.length);
    return f(input);
  }
  if (input instanceof Set) {
    let n = 0;
    for (const s of input) n += s.length + 1;
    budget.charge(n);
    return new Set([...input].map(f));
  }
  throw new Error(
    `function "${name}" needs a string or a set, but its argument is ${a(typeOf(input))}`,
  );
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

/** Go's `strings.ReplaceAll`, including its handling of an empty `match`; charges its output. */
function replaceAll(s: string, match: string, replacement: string, budget: Budget): string {
  if (match === "") {
    const points = Array.from(s);
    budget.charge((points.length + 1) * replacement.length + s.length);
    return replacement + points.map((p) => p + replacement).join("");
  }
  let count = 0;
  for (let at = s.indexOf(match); at !== -1; at = s.indexOf(match, at + match.length)) count++;
  budget.charge(s.length + count * replacement.length);
  return s.split(match).join(replacement);
}

/** Go's `strings.Split`: an empty separator splits into characters, and "" into nothing. */
function split(s: string, sep: string): string[] {
  if (sep === "") return Array.from(s);
  return s.split(sep);
}

function containsAny(set: StringSet, items: StringSet): boolean {
  for (const item of items) if (set.has(item)) return true;
  return false;
}

/** Teleport's contains_all is false for an empty item set. */
function containsAll(set: StringSet, items: StringSet): boolean {
  for (const item of items) if (!set.has(item)) return false;
  return items.size > 0;
}

/** Go's `Time.After(first) && Time.Before(second)` with the ends put in order. */
function timeBetween(t: GoTime, a: GoTime, b: GoTime): boolean {
  const [low, high] = a.ns > b.ns ? [b.ns, a.ns] : [a.ns, b.ns];
  return t.ns > low && t.ns < high;
}

/** `expression.ToSemver`: only a string can be a version. */
function semverOf(v: Value) {
  if (typeof v !== "string") throw new Error(`${a(typeOf(v))} cannot be read as a version`);
  return parseSemver(v);
}

function dictWith(d: Dict, key: string, value: StringSet): Dict {
  const out = new Map(d);
  out.set(key, value);
  return out;
}

/** A literal pattern's problem when parsing, and its compiled form for evaluation. */
function prepareMatch(arg: number, raw: boolean) {
  return (args: readonly Argument[], prep: Preparation): GoRegexp | undefined => {
    const literal = args[arg]!.literal;
    if (typeof literal !== "string") return undefined;
    const pattern = raw || isRegexpExpression(literal)
      ? literal
      : globNeedsRegexp(literal)
      ? globToRegexp(literal)
      : undefined;
    if (pattern === undefined) return undefined; // a glob, matched without RE2
    let compiled: GoRegexp;
    try {
      compiled = compileGoRegexp(pattern);
    } catch (error) {
      return prep.problem(arg, (error as Error).message);
    }
    prep.regexp(arg, compiled.size);
    return compiled;
  };
}

const CONTAINS: Builtin = {
  params: ["set", "string"],
  result: "boolean",
  impl: ([s, v]) => asSet(s!).has(asString(v!)),
};
const CONTAINS_ANY: Builtin = {
  params: ["set", "set"],
  result: "boolean",
  impl: ([s, items], { budget }) => {
    budget.charge(asSet(items!).size);
    return containsAny(asSet(s!), asSet(items!));
  },
};
const CONTAINS_ALL: Builtin = {
  params: ["set", "set"],
  result: "boolean",
  impl: ([s, items], { budget }) => {
    budget.charge(asSet(items!).size);
    return containsAll(asSet(s!), asSet(items!));
  },
};
const IS_EMPTY: Builtin = {
  params: ["set"],
  result: "boolean",
  impl: ([s]) => asSet(s!).size === 0,
};
const BEFORE: Builtin = {
  params: ["time", "time"],
  result: "boolean",
  impl: ([t, other]) => asTime(t!).ns < asTime(other!).ns,
};
const AFTER: Builtin = {
  params: ["time", "time"],
  result: "boolean",
  impl: ([t, other]) => asTime(t!).ns > asTime(other!).ns,
};
const DAY: Builtin = {
  params: ["time"],
  result: "string",
  impl: ([t]) => weekday(asTime(t!)),
};
const CLOCK_BETWEEN: Builtin = {
  params: ["time", "string", "string"],
  result: "boolean",
  impl: ([t, start, end]) => clockBetween(asTime(t!), asString(start!), asString(end!)),
};
/**
 * Every requested resource has the label. The plugin's environment, like the
 * Go plugin's, has no requested resources, so this is true.
 */
const HAS_LABELS: Builtin = {
  params: ["resources", "string", "string"],
  result: "boolean",
  impl: ([resources, key, value]) =>
    (resources as Resources).items.every((r) =>
      Object.hasOwn(r.labels, asString(key!)) && r.labels[asString(key!)] === asString(value!)
    ),
};

function semverCompare(sign: 1 | -1): Builtin {
  return {
    params: ["any", "any"],
    result: "boolean",
    impl: ([x, y]) => compareSemver(semverOf(x!), semverOf(y!)) === sign,
  };
}

export const FUNCTIONS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ["set", {
    params: [],
    rest: "string",
    result: "set",
    impl: (args, { budget }) => {
      budget.charge(args.length);
      return new Set(args.map(asString));
    },
  }],
  ["dict", {
    params: [],
    rest: "pair",
    result: "map",
    impl: (args, { budget }) => {
      const out = new Map<string, StringSet>();
      for (const p of args as readonly Pair[]) {
        if (typeof p.first !== "string") {
          throw new Error(`dict keys must be strings, but one is ${a(typeOf(p.first))}`);
        }
        if (!(p.second instanceof Set)) {
          throw new Error(`dict values must be sets, but one is ${a(typeOf(p.second))}`);
        }
        budget.charge(1);
        out.set(p.first, p.second);
      }
      return out;
    },
  }],
  ["pair", { params: ["any", "any"], result: "pair", impl: ([x, y]) => new Pair(x!, y!) }],
  ["union", {
    params: [],
    rest: "set",
    result: "set",
    impl: (args, { budget }) => {
      budget.charge(setSize(args));
      const out = new Set<string>();
      for (const s of args) for (const v of asSet(s)) out.add(v);
      return out;
    },
  }],
  ["ifelse", {
    params: ["boolean", "any", "any"],
    result: "any",
    impl: ([cond, x, y]) => (cond ? x! : y!),
  }],
  ["strings.upper", {
    params: ["any"],
    result: "any",
    impl: ([input], { budget }) =>
      transform("strings.upper", input!, budget, (s) => mapCharacters(s, upper)),
  }],
  ["strings.lower", {
    params: ["any"],
    result: "any",
    impl: ([input], { budget }) =>
      transform("strings.lower", input!, budget, (s) => mapCharacters(s, lower)),
  }],
  ["strings.replaceall", {
    params: ["any", "string", "string"],
    result: "any",
    impl: ([input, match, replacement], { budget }) =>
      transform(
        "strings.replaceall",
        input!,
        budget,
        (s) => replaceAll(s, asString(match!), asString(replacement!), budget),
      ),
  }],
  ["choose", {
    params: [],
    rest: "option",
    result: "any",
    impl: (args) => {
      for (const option of args as readonly Option[]) if (option.condition) return option.value;
      throw new Error(
        'no option of choose applies; add a default one such as option(true, "…")',
      );
    },
  }],
  ["option", {
    params: ["boolean", "any"],
    result: "option",
    impl: ([cond, value]) => new Option(cond as boolean, value!),
  }],
  ["email.local", {
    params: ["set"],
    result: "set",
    impl: ([emails], { budget }) => {
      let n = 0;
      for (const e of asSet(emails!)) n += e.length + 1;
      budget.charge(n);
      return new Set([...asSet(emails!)].map(emailLocal));
    },
  }],
  ["regexp.match", {
    params: ["set", "string"],
    result: "boolean",
    impl: ([inputs, expression], { budget, prepared }) =>
      matchesAny(asSet(inputs!), asString(expression!), budget, prepared as GoRegexp | undefined),
    prepare: prepareMatch(1, false),
  }],
  ["regexp.replace", {
    params: ["set", "string", "string"],
    result: "set",
    impl: ([inputs, match, replacement], { budget, prepared }) => {
      const compiled = (prepared as GoRegexp | undefined) ??
        compileGoRegexp(asString(match!), budget);
      const out = new Set<string>();
      for (const input of asSet(inputs!)) {
        budget.charge((input.length + 1) * compiled.size);
        if (!compiled.re.test(input)) continue; // Teleport drops what does not match
        const replaced = replaceAllString(compiled, input, asString(replacement!), budget);
        if (replaced !== "") out.add(replaced);
      }
      return out;
    },
    prepare: prepareMatch(1, true),
  }],
  ["strings.split", {
    params: ["set", "string"],
    result: "set",
    impl: ([inputs, sep], { budget }) => {
      let n = 0;
      for (const s of asSet(inputs!)) n += s.length + 1;
      budget.charge(n);
      return new Set([...asSet(inputs!)].flatMap((s) => split(s, asString(sep!))));
    },
  }],
  ["time.RFC3339", {
    params: ["string"],
    result: "time",
    impl: ([text]) => parseRfc3339(asString(text!)),
    prepare: (args, prep) => {
      const literal = args[0]!.literal;
      if (typeof literal !== "string") return undefined;
      try {
        return parseRfc3339(literal);
      } catch (error) {
        return prep.problem(0, (error as Error).message);
      }
    },
  }],
  ["before", BEFORE],
  ["after", AFTER],
  ["between", {
    params: ["any", "any", "any"],
    result: "boolean",
    impl: ([value, first, second]) => {
      if (value instanceof GoTime) {
        if (!(first instanceof GoTime) || !(second instanceof GoTime)) {
          throw new Error("between needs two times to compare a time with");
        }
        return timeBetween(value, first, second);
      }
      // Not a time: versions, from the first (included) to the second (excluded).
      const v = semverOf(value!);
      const low = compareSemver(v, semverOf(first!));
      return low >= 0 && compareSemver(v, semverOf(second!)) < 0;
    },
  }],
  ["contains_any", CONTAINS_ANY],
  ["contains_all", CONTAINS_ALL],
  ["is_empty", IS_EMPTY],
  ["newer_than", semverCompare(1)],
  ["older_than", semverCompare(-1)],
  ["day", DAY],
  ["clock_between", CLOCK_BETWEEN],
  ["has_labels", HAS_LABELS],
  // Ours: Teleport has contains only as a method.
  ["contains", CONTAINS],
]);

export const METHODS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ["add", {
    params: ["set"],
    rest: "string",
    result: "set",
    impl: ([s, ...values], { budget }) => {
      budget.charge(asSet(s!).size + values.length);
      return new Set([...asSet(s!), ...values.map(asString)]);
    },
  }],
  ["contains", CONTAINS],
  ["put", {
    params: ["map", "string", "set"],
    result: "map",
    impl: ([d, key, value], { budget }) => {
      budget.charge(asDict(d!).size + 1);
      return dictWith(asDict(d!), asString(key!), asSet(value!));
    },
  }],
  ["add_values", {
    params: ["map", "string"],
    rest: "string",
    result: "map",
    impl: ([d, key, ...values], { budget }) => {
      const dict = asDict(d!);
      const k = asString(key!);
      const old = dict.get(k);
      budget.charge(dict.size + (old?.size ?? 0) + values.length);
      return dictWith(dict, k, new Set([...(old ?? []), ...values.map(asString)]));
    },
  }],
  ["remove", {
    params: [["set", "map"]],
    rest: "string",
    result: "any",
    impl: ([target, ...items], { budget }) => {
      if (target instanceof Map) {
        budget.charge(dictSize(target) + items.length);
        const out = new Map(target as Dict);
        for (const key of items) out.delete(asString(key));
        return out;
      }
      budget.charge(asSet(target!).size + items.length);
      const out = new Set(asSet(target!));
      for (const item of items) out.delete(asString(item));
      return out;
    },
  }],
  ["before", BEFORE],
  ["after", AFTER],
  ["between", {
    params: ["time"],
    rest: "time",
    result: "boolean",
    impl: ([t, ...interval]) => {
      if (interval.length !== 2) {
        throw new Error(`between needs 2 times, but ${interval.length} given`);
      }
      return timeBetween(asTime(t!), asTime(interval[0]!), asTime(interval[1]!));
    },
  }],
  ["contains_any", CONTAINS_ANY],
  ["contains_all", CONTAINS_ALL],
  ["isempty", IS_EMPTY],
  ["day", DAY],
  ["clock_between", CLOCK_BETWEEN],
  ["has_labels", HAS_LABELS],
]);
