/**
 * Helpers the condition tests share (test-only; not imported by the
 * product): evaluating a condition against an environment, tables of
 * expected matches, and the `ConditionError`s of parsing and evaluating.
 */
import assert from "node:assert/strict";
import {
  type ConditionEnv,
  ConditionError,
  evaluateCondition,
  parseCondition,
} from "../condition.ts";

export type Case = { condition: string; matches: boolean; env?: ConditionEnv };

/** A refusal: where (1-based column) and why. */
export type Refusal = {
  condition: string;
  column: number;
  reason: string | RegExp;
  env?: ConditionEnv;
};

/** The ConditionError `run` throws (fails the test when it throws nothing or something else). */
export function conditionError(run: () => unknown): ConditionError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConditionError, `expected a ConditionError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConditionError, but nothing was thrown");
}

function checkRefusal(error: ConditionError, c: Refusal, kind: RegExp) {
  assert.match(error.message, kind, c.condition);
  assert.equal(error.column, c.column, `column of ${c.condition}`);
  if (typeof c.reason === "string") assert.equal(error.reason, c.reason, c.condition);
  else assert.match(error.reason, c.reason, c.condition);
}

/** The helpers, bound to a default environment. */
export function conditionTester(defaultEnv: ConditionEnv) {
  const matches = (condition: string, env: ConditionEnv = defaultEnv): boolean =>
    evaluateCondition(parseCondition(condition), env);
  return {
    matches,
    /** Each condition matches, or not, as the case says. */
    table(cases: Case[]) {
      for (const c of cases) assert.equal(matches(c.condition, c.env), c.matches, c.condition);
    },
    /** Conditions Teleport refuses when parsing. */
    refused(cases: Refusal[]) {
      for (const c of cases) {
        checkRefusal(
          conditionError(() => parseCondition(c.condition)),
          c,
          /^Cannot parse condition /,
        );
      }
    },
    /** Conditions that parse, as in Teleport, but fail when evaluated. */
    failing(cases: Refusal[]) {
      for (const c of cases) {
        const cond = parseCondition(c.condition);
        const error = conditionError(() => evaluateCondition(cond, c.env ?? defaultEnv));
        checkRefusal(error, c, /^Cannot evaluate condition /);
      }
    },
  };
}
