/**
 * Access Monitoring Rule conditions (`spec.condition`): Teleport's predicate
 * language, parsed and type-checked once, then evaluated against an access
 * request and the requesting user's traits, without `eval`.
 *
 * Teleport parses a condition with Go's expression syntax (vulcand/predicate
 * runs `go/parser`), types it when parsing (`lib/utils/typical`), and offers
 * the variables of `lib/accessmonitoring/request_mapping.go` and the
 * functions of `lib/expression` `DefaultParserSpec`. This module follows
 * those: source → tokens (`condition/_lexer.ts`) → syntax tree
 * (`_parser.ts`) → typed closures (`_compile.ts`, `_builtins.ts`,
 * `_fields.ts`). Regular expressions run on RE2 in linear time
 * (`_regexp.ts`), globs on a linear matcher (`_glob.ts`), and one
 * evaluation is bounded by a step budget (`_budget.ts`), so no rule and no
 * request can hold the event loop.
 */
import type { AccessRequest } from "../teleport/types.ts";
import { Budget, BudgetExceeded, MAX_EVALUATION_STEPS } from "./condition/_budget.ts";
import { Compiler, MAX_CONDITION_REGEXP_SIZE, type Typed } from "./condition/_compile.ts";
import { ConditionError } from "./condition/_error.ts";
import type { Scope } from "./condition/_fields.ts";
import { tokenize } from "./condition/_lexer.ts";
import { MAX_NESTING_DEPTH, parse } from "./condition/_parser.ts";
import { MAX_REGEXP_SIZE } from "./condition/_regexp.ts";
import { a } from "./condition/_values.ts";

export { ConditionError };
export { MAX_CONDITION_REGEXP_SIZE, MAX_EVALUATION_STEPS, MAX_NESTING_DEPTH, MAX_REGEXP_SIZE };

/** Longest condition accepted; real rules are a few hundred characters. */
export const MAX_CONDITION_LENGTH = 16_384;

/** What a condition reads: the request, and the requesting user's traits when the caller has them. */
export interface ConditionEnv {
  request: AccessRequest;
  userTraits?: Readonly<Record<string, readonly string[]>>;
}

export interface EvaluateOptions {
  /** Steps the evaluation may take before it fails (default `MAX_EVALUATION_STEPS`). */
  maxSteps?: number;
}

const COMPILED: unique symbol = Symbol("compiled condition");

/** A parsed, type-checked condition; evaluate it with `evaluateCondition` as often as needed. */
export interface Condition {
  readonly source: string;
  readonly [COMPILED]: Compiled;
}

interface Compiled {
  readonly root: Typed;
  readonly compiler: Compiler;
}

/** Parses and type-checks `source`; throws `ConditionError` saying what is wrong and where. */
export function parseCondition(source: string): Condition {
  const compiler = new Compiler(source);
  if (source.length > MAX_CONDITION_LENGTH) {
    compiler.fail(0, `the condition is longer than ${MAX_CONDITION_LENGTH} characters`);
  }
  if (source.trim() === "") compiler.fail(0, "the condition is empty");
  const fail = (pos: number, reason: string) => compiler.fail(pos, reason);
  const syntax = parse(source, tokenize(source, fail), fail);
  const root = compiler.compile(syntax);
  // Teleport lets a condition of any type parse and never match unless it is true; a type
  // known not to be a boolean can never match, so it is refused here (values typed `any`,
  // such as ifelse(…), are accepted and match only when they are true).
  if (root.type !== "boolean" && root.type !== "any") {
    compiler.fail(
      syntax.pos,
      `the condition must be a boolean (true or false), but ${compiler.snippet(syntax)} is ${
        a(root.type)
      }`,
    );
  }
  return Object.freeze({ source, [COMPILED]: { root, compiler } });
}

/**
 * Whether `cond` holds for the request (Teleport's `EvaluateCondition`: a
 * result that is not `true` does not match). Throws `ConditionError` when a
 * value known only now is unusable, or when the evaluation would take more
 * than `maxSteps`.
 */
/**
 * Whether `error`, from {@linkcode evaluateCondition}, says the evaluation
 * ran out of steps: the cost of the request's own data (thousands of
 * suggested reviewers), not a fault of the condition.
 */
export function isOverBudget(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof BudgetExceeded) return true;
  }
  return false;
}

export function evaluateCondition(
  cond: Condition,
  env: ConditionEnv,
  options: EvaluateOptions = {},
): boolean {
  const { root, compiler } = cond[COMPILED];
  const scope: Scope = {
    request: env.request,
    traits: env.userTraits ?? {},
    budget: new Budget(options.maxSteps ?? MAX_EVALUATION_STEPS),
    at: 0,
  };
  try {
    return root.run(scope) === true;
  } catch (error) {
    if (error instanceof BudgetExceeded) {
      throw compiler.evaluationError(scope.at, error.message, error);
    }
    throw error;
  }
}
