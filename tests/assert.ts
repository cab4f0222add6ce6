/** Assertions the tests share that `node:assert` lacks. Test-only. */
import assert from "node:assert/strict";

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

/** The `Error` that `promise` rejects with; fails the test when it resolves instead. */
export function rejection(promise: Promise<unknown>): Promise<Error>;
/** The error `promise` rejects with, checked to be a `type`. */
export function rejection<E extends Error>(
  promise: Promise<unknown>,
  type: ErrorClass<E>,
): Promise<E>;
export async function rejection(
  promise: Promise<unknown>,
  type: ErrorClass<Error> = Error,
): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected a rejection with a ${type.name}`);
}
