/**
 * Build-time facts. `scripts/build.sh` rewrites GIT_REF before `deno compile`
 * and restores this file afterwards; under `deno run` it stays "dev".
 */
export const GIT_REF = "dev";
