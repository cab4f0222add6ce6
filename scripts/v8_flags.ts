/**
 * The V8 flags the plugin runs with: `scripts/build.sh` embeds them in the
 * compiled binary (`deno compile --v8-flags`), the benchmark passes them to
 * the plugin it spawns (`DENO_V8_FLAGS`), and `deno run -A main.ts start`
 * users can set them the same way. Measured with `deno task bench`: see the
 * README's benchmark section.
 *
 * Run as `deno run scripts/v8_flags.ts` it prints them (for build.sh).
 */
/**
 * `--max-semi-space-size=1` (MiB): V8's young generation grows to 16 MiB
 * per semi-space by default, which a daemon of this size never needs; capped,
 * the plugin's resident memory idle and at the peak of a burst drops by
 * 15–30 MB for a few more (cheap) scavenges.
 */
export const PLUGIN_V8_FLAGS = "--max-semi-space-size=1";

if (import.meta.main) console.log(PLUGIN_V8_FLAGS);
