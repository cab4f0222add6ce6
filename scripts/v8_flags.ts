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
 * - `--max-semi-space-size=1` (MiB): V8's young generation grows to 16 MiB
 *   per semi-space by default, which a daemon of this size never needs.
 * - `--max-old-space-size=128` (MiB): the old generation is collected before
 *   it grows past 128 MiB instead of when the machine's memory suggests; the
 *   plugin's live data is far smaller (a reconcile of 10,000 requests holds
 *   ~10 MiB). Raise it (`DENO_V8_FLAGS=--max-old-space-size=512`) for a
 *   cluster with very many access requests.
 *
 * Measured with `deno task bench` (aiosmtpd, 300 / 1,000 requests × 3): peak
 * RSS 167–177 / 226 MiB without them, 125 / 130 MiB with them, for the same
 * burst time within noise.
 *
 * The young generation is a trade of CPU for memory: a burst allocates
 * ~580 KiB per request (mostly Nodemailer), so 1 MiB semi-spaces mean a
 * scavenge every other request. `deno run -A scripts/profile_burst.ts
 * --v8-flags=...` over 300 requests: 355 scavenges and 0.3–0.5 s of GC pauses
 * at 1 MiB, 83 and ~0.3 s at 4 MiB (+5 MiB idle and peak RSS), 17 and ~0.1 s
 * at V8's default 16 MiB (+30–50 MiB). The burst's wall time moved within
 * its run-to-run noise (±15 %), so the memory targets decided.
 */
export const PLUGIN_V8_FLAGS = "--max-semi-space-size=1,--max-old-space-size=128";

/**
 * The environment the systemd unit (`teleport-email.service`) and the
 * container image (`deploy/Dockerfile`) give the plugin, and the benchmark
 * too: glibc's malloc with one arena. By default each thread of the runtime
 * (V8's workers, Deno's blocking pool) gets an arena of its own, and during a
 * burst memory freed in one arena is not reused by another: `deno task bench
 * --requests 1000 --servers aiosmtpd`, peak RSS 125–128 MiB in five runs
 * without it, 114, 114 and 124 MiB in three with it; burst time and idle
 * RSS within noise. A tuning of glibc (what the binary links against), read
 * when the process starts, so it cannot be embedded in the binary.
 */
export const PLUGIN_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_ARENA_MAX: "1",
});

if (import.meta.main) console.log(PLUGIN_V8_FLAGS);
