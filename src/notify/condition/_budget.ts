/**
 * The bound on one evaluation. A condition has no loops, so its cost is the
 * data its operations touch; every operation charges that work here before
 * doing it, and an evaluation that would pass the budget stops with an
 * error instead of holding the event loop.
 *
 * One step is one character or set element examined or produced, or one
 * (character × instruction) step of the RE2 machine, which is the worst
 * case of a linear-time match; compiling a regular expression costs
 * `COMPILE_STEPS_PER_INSTRUCTION` per instruction. Measured on the
 * project's machine (2 cores), the slowest kind of step (RE2's NFA on
 * Unicode classes) takes about 40 ns, so a whole budget is about 0.1 s.
 */

/** Steps one evaluation may take (about 0.1 s at the slowest measured step). */
export const MAX_EVALUATION_STEPS = 2_500_000;
/** Steps charged per RE2 instruction to compile a pattern known only when evaluating (≈12 µs). */
export const COMPILE_STEPS_PER_INSTRUCTION = 300;

export class BudgetExceeded extends Error {
  constructor(readonly limit: number) {
    super(
      `evaluating the condition takes more than ${limit} steps, the limit that keeps the ` +
        "plugin responsive",
    );
    this.name = "BudgetExceeded";
  }
}

export class Budget {
  readonly limit: number;
  #left: number;

  constructor(limit = MAX_EVALUATION_STEPS) {
    this.limit = limit;
    this.#left = limit;
  }

  /** Steps taken so far. */
  get used(): number {
    return this.limit - this.#left;
  }

  /** Takes `steps`, or throws `BudgetExceeded` when they are not left. */
  charge(steps: number): void {
    this.#left -= steps;
    if (this.#left < 0) throw new BudgetExceeded(this.limit);
  }

  /** Whether `steps` are still left (nothing is taken). */
  affords(steps: number): boolean {
    return steps <= this.#left;
  }
}
