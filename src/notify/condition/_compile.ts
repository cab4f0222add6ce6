/**
 * Types and closures (Teleport's lib/utils/typical): every node of the
 * syntax tree gets a type when parsing, and a mistake is reported then,
 * with the place; a value typed `any` (the result of ifelse, choose,
 * remove or strings.*) is checked when evaluated instead, as Teleport does.
 * The result is a tree of closures that charge the evaluation budget as
 * they run.
 */
import { type Argument, type Builtin, FUNCTIONS, METHODS, type Param } from "./_builtins.ts";
import { BudgetExceeded } from "./_budget.ts";
import { ConditionError, parseError, snippet } from "./_error.ts";
import { FIELD_HINT, FIELDS, type Scope } from "./_fields.ts";
import type { Syntax } from "./_parser.ts";
import { a, type StaticType, type StringSet, typeOf, type Value } from "./_values.ts";

/** Total size of the literal regular expressions one condition may hold (RE2 instructions). */
export const MAX_CONDITION_REGEXP_SIZE = 10_000;

export interface Typed {
  readonly type: StaticType;
  readonly pos: number;
  readonly end: number;
  /** The value, when it is a literal known at parse time. */
  readonly literal?: Value;
  readonly run: (scope: Scope) => Value;
  /** For a map field: reads one key (an index expression) without building the map. */
  readonly key?: (scope: Scope, key: string) => StringSet;
}

function accepts(param: Param, type: StaticType): boolean {
  if (param === "any" || type === "any") return true;
  return typeof param === "string" ? param === type : (param as readonly string[]).includes(type);
}

function acceptsValue(param: Param, value: Value): boolean {
  return param === "any" || accepts(param, typeOf(value));
}

function describeParam(param: Param): string {
  return typeof param === "string" ? a(param) : param.map(a).join(" or ");
}

export class Compiler {
  readonly source: string;
  #regexpSize = 0;

  constructor(source: string) {
    this.source = source;
  }

  fail(pos: number, reason: string): never {
    return parseError(this.source, pos, reason);
  }

  snippet(node: { pos: number; end: number }): string {
    return snippet(this.source, node);
  }

  /** An error for a value that turned out unusable when evaluated. */
  evaluationError(pos: number, reason: string, cause?: unknown): ConditionError {
    return new ConditionError(this.source, pos, reason, "evaluate", { cause });
  }

  compile(node: Syntax): Typed {
    switch (node.kind) {
      case "name":
        return this.#field([node.name], node);
      case "string":
        return this.#literal("string", node.value, node);
      case "int":
        return this.#literal("integer", node.value, node);
      case "float":
        return this.#literal("float", node.value, node);
      case "select": {
        const path = selectorPath(node);
        if (!path) {
          this.fail(
            node.namePos,
            `".${node.name}" cannot follow ${this.snippet(node.target)}: only fields have parts, ` +
              `and a method needs "(…)"`,
          );
        }
        return this.#field(path, node);
      }
      case "index":
        return this.#index(node);
      case "call":
        return this.#call(node);
      case "not": {
        const operand = this.want(this.compile(node.operand), "boolean", '"!"');
        return {
          type: "boolean",
          pos: node.pos,
          end: node.end,
          run: (s) => {
            s.budget.charge(1);
            return !operand.run(s);
          },
        };
      }
      case "compare":
        return this.#compare(node);
      case "logic": {
        const operands = node.operands.map((o) =>
          this.want(this.compile(o), "boolean", `"${node.op}"`)
        );
        const run = node.op === "&&"
          ? (s: Scope) => {
            s.budget.charge(1);
            return operands.every((o) => o.run(s));
          }
          : (s: Scope) => {
            s.budget.charge(1);
            return operands.some((o) => o.run(s));
          };
        return { type: "boolean", pos: node.pos, end: node.end, run };
      }
    }
  }

  /**
   * `typed` where `type` is needed: a value typed `any` is checked when
   * evaluated; anything else must have the type now.
   */
  want(typed: Typed, type: StaticType, what: string): Typed {
    if (typed.type === type) return typed;
    if (typed.type === "any") {
      return {
        ...typed,
        type,
        run: (s) => {
          const value = typed.run(s);
          if (typeOf(value) !== type) {
            throw this.evaluationError(
              typed.pos,
              `${what} needs ${a(type)}, but ${this.snippet(typed)} gave ${a(typeOf(value))}`,
            );
          }
          return value;
        },
      };
    }
    this.#floatHere(typed);
    return this.fail(
      typed.pos,
      `${what} needs ${a(type)}, but ${this.snippet(typed)} is ${a(typed.type)}`,
    );
  }

  /** A decimal number is accepted only where any value is; elsewhere say so at the number. */
  #floatHere(typed: Typed): void {
    if (typed.type !== "float") return;
    this.fail(
      typed.pos,
      `number ${this.snippet(typed)} is not supported here: only decimal integers such as 42 ` +
        "are (a decimal number is kept only by ifelse, pair, option and choose)",
    );
  }

  #literal(type: StaticType, value: Value, node: Syntax): Typed {
    return { type, pos: node.pos, end: node.end, literal: value, run: () => value };
  }

  /** Teleport's getIdentifier: the longest known prefix, then `map.key` for one more part. */
  #field(path: readonly string[], node: Syntax): Typed {
    let joined = "";
    for (let i = 0; i < path.length; i++) {
      joined = i === 0 ? path[0]! : `${joined}.${path[i]}`;
      const field = FIELDS.get(joined);
      if (!field) continue;
      const rest = path.length - i - 1;
      const get = field.get;
      if (rest === 0) {
        if (field.literal !== undefined) return this.#literal(field.type, field.literal, node);
        return {
          type: field.type,
          pos: node.pos,
          end: node.end,
          run: (s) => {
            s.budget.charge(1);
            return get(s);
          },
          ...(field.key ? { key: field.key } : {}),
        };
      }
      if (rest === 1 && field.key) {
        const key = path[i + 1]!;
        const read = field.key;
        return {
          type: "set",
          pos: node.pos,
          end: node.end,
          run: (s) => {
            s.budget.charge(1);
            return read(s, key);
          },
        };
      }
    }
    const name = path.join(".");
    return this.fail(
      node.pos,
      path.length === 1 ? `unknown name "${name}"` : `unknown field "${name}" (${FIELD_HINT})`,
    );
  }

  /** `map[key]`: only a map field can be indexed (Teleport's getProperty). */
  #index(node: Extract<Syntax, { kind: "index" }>): Typed {
    const target = this.compile(node.target);
    if (target.type !== "map") {
      this.#floatHere(target);
      this.fail(
        target.pos,
        `"[…]" needs a map, but ${this.snippet(target)} is ${a(target.type)}`,
      );
    }
    if (!target.key) {
      this.fail(
        target.pos,
        `"[…]" needs a map field such as user.traits, but ${
          this.snippet(target)
        } is a map computed by the condition`,
      );
    }
    const read = target.key;
    const key = this.want(this.compile(node.key), "string", "a map key");
    return {
      type: "set",
      pos: node.pos,
      end: node.end,
      run: (s) => {
        s.budget.charge(1);
        return read(s, key.run(s) as string);
      },
    };
  }

  /**
   * Teleport's `==` and `!=`: the left side's type decides, or the right
   * side's when the left one is known only when evaluated; only strings and
   * integers compare.
   */
  #compare(node: Extract<Syntax, { kind: "compare" }>): Typed {
    const left = this.compile(node.left);
    const right = this.compile(node.right);
    const decider = left.type === "any" ? right : left;
    const other = decider === left ? right : left;
    if (decider.type === "any") {
      this.fail(
        node.opPos,
        `"${node.op}" needs one side whose type is known when parsing, but both ${
          this.snippet(node.left)
        } and ${this.snippet(node.right)} are known only when evaluated`,
      );
    }
    if (decider.type !== "string" && decider.type !== "integer") {
      this.#floatHere(decider);
      this.fail(
        node.opPos,
        `"${node.op}" compares strings or integers, but ${this.snippet(decider)} is ${
          a(decider.type)
        }`,
      );
    }
    if (other.type !== decider.type && other.type !== "any") {
      this.#floatHere(other);
      const side = other === right ? "right" : "left";
      this.fail(
        other.pos,
        `the ${side} side of "${node.op}" must be ${a(decider.type)} like the ${
          side === "right" ? "left" : "right"
        } side, but ${this.snippet(other)} is ${a(other.type)}`,
      );
    }
    const type = decider.type;
    const l = this.want(left, type, `"${node.op}"`);
    const r = this.want(right, type, `"${node.op}"`);
    const equal = node.op === "==";
    return {
      type: "boolean",
      pos: node.pos,
      end: node.end,
      run: (s) => {
        const x = l.run(s);
        const y = r.run(s);
        s.budget.charge(
          typeof x === "string" ? Math.min(x.length, (y as string).length) + 1 : 1,
        );
        return (x === y) === equal;
      },
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
      if (callee.target.kind !== "name") {
        this.fail(callee.namePos, `unknown method "${callee.name}"`);
      }
    } else if (callee.kind !== "name") {
      this.fail(node.open, `only functions and methods can be called, not ${this.snippet(callee)}`);
    }
    const name = functionName(callee);
    const builtin = FUNCTIONS.get(name);
    if (builtin) return this.#apply(`function "${name}"`, builtin, node.args, node, false);
    return this.fail(callee.pos, `unknown function "${name}"`);
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
      this.fail(
        node.pos,
        `${label} takes ${wanted} argument${count === 1 ? "" : "s"}, but ${
          shown(argNodes.length)
        } ${shown(argNodes.length) === 1 ? "is" : "are"} given`,
      );
    }
    const role = (i: number) =>
      isMethod && i === 0 ? `the receiver of ${label}` : `argument ${shown(i + 1)} of ${label}`;
    const params = argNodes.map((_, i) => builtin.params[i] ?? builtin.rest!);
    const args = argNodes.map((argNode, i) => {
      const arg = this.compile(argNode);
      const param = params[i]!;
      if (!accepts(param, arg.type)) {
        this.#floatHere(arg);
        this.fail(
          arg.pos,
          `${role(i)} must be ${describeParam(param)}, but ${this.snippet(argNode)} is ${
            a(arg.type)
          }`,
        );
      }
      return arg;
    });
    const prepared = builtin.prepare?.(
      args.map((arg): Argument => ({
        type: arg.type,
        ...(arg.literal !== undefined ? { literal: arg.literal } : {}),
      })),
      {
        problem: (i, reason) => this.fail(args[i]!.pos, reason),
        regexp: (i, size) => {
          this.#regexpSize += size;
          if (this.#regexpSize > MAX_CONDITION_REGEXP_SIZE) {
            this.fail(
              args[i]!.pos,
              `the condition's regular expressions compile to about ${this.#regexpSize} ` +
                `instructions in all, and this plugin allows ${MAX_CONDITION_REGEXP_SIZE}`,
            );
          }
        },
      },
    );
    // Arguments typed `any` where a type is needed are checked when evaluated.
    const runs = args.map((arg, i) => {
      const param = params[i]!;
      if (arg.type !== "any" || param === "any") return arg.run;
      return (s: Scope) => {
        const value = arg.run(s);
        if (!acceptsValue(param, value)) {
          throw this.evaluationError(
            arg.pos,
            `${role(i)} must be ${describeParam(param)}, but ${this.snippet(arg)} gave ${
              a(typeOf(value))
            }`,
          );
        }
        return value;
      };
    });
    const impl = builtin.impl;
    return {
      type: builtin.result,
      pos: node.pos,
      end: node.end,
      run: (scope) => {
        scope.budget.charge(1);
        const values = runs.map((run) => run(scope));
        scope.at = node.pos;
        try {
          return impl(values, { budget: scope.budget, prepared });
        } catch (error) {
          if (error instanceof ConditionError) throw error;
          if (error instanceof BudgetExceeded) {
            throw this.evaluationError(node.pos, error.message, error);
          }
          throw this.evaluationError(node.pos, (error as Error).message, error);
        }
      },
    };
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
