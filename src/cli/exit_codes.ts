/**
 * Exit codes of `teleport-email`, shared by the commands and `main.ts`
 * (which maps usage errors and a second SIGINT itself).
 */

/** A config or runtime error (SPEC §1); usage errors are 2. */
export const EXIT_FAILURE = 1;
