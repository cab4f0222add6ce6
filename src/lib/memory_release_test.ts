import assert from "node:assert/strict";
import { Activity } from "./activity.ts";
import { FakeClock } from "./clock.ts";
import { MEMORY_RELEASE_QUIET_MS, releaseMemoryWhenQuiet } from "./memory_release.ts";

function setup() {
  const activity = new Activity();
  const clock = new FakeClock();
  const stop = new AbortController();
  let releases = 0;
  releaseMemoryWhenQuiet({ activity, clock, release: () => void releases++ }, stop.signal);
  return { activity, clock, stop, releases: () => releases };
}

Deno.test("memory is given back once, after the quiet time that follows work", async () => {
  const { activity, clock, releases } = setup();
  const end = activity.begin();
  await clock.tick(MEMORY_RELEASE_QUIET_MS * 3);
  assert.equal(releases(), 0, "not while work is under way");
  end();
  await clock.tick(MEMORY_RELEASE_QUIET_MS - 1);
  assert.equal(releases(), 0, "not before the quiet time");
  await clock.tick(1);
  assert.equal(releases(), 1);
  await clock.tick(MEMORY_RELEASE_QUIET_MS * 10);
  assert.equal(releases(), 1, "not again without new work");
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("work within the quiet time starts it again", async () => {
  const { activity, clock, releases } = setup();
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS - 100);
  const end = activity.begin();
  await clock.tick(200);
  end();
  await clock.tick(MEMORY_RELEASE_QUIET_MS - 1);
  assert.equal(releases(), 0);
  await clock.tick(1);
  assert.equal(releases(), 1);
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS);
  assert.equal(releases(), 2, "each quiet stretch after work gives back once");
});

Deno.test("a retry waiting for its timer does not hold a release back", async () => {
  const { activity, clock, releases } = setup();
  const endWait = activity.begin("timer");
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS);
  assert.equal(releases(), 1);
  endWait();
});

Deno.test("nothing is released before any work, nor after the stop", async () => {
  const { activity, clock, stop, releases } = setup();
  await clock.tick(MEMORY_RELEASE_QUIET_MS * 2);
  assert.equal(releases(), 0);
  activity.begin()();
  stop.abort();
  assert.equal(clock.pendingTimers, 0);
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS * 2);
  assert.equal(releases(), 0);
});

Deno.test("a failing release is logged and tried again after the next work", async () => {
  const activity = new Activity();
  const clock = new FakeClock();
  const warnings: string[] = [];
  let calls = 0;
  const log = {
    warn: (message: string, props: { error: string }) =>
      warnings.push(message.replace("{error}", props.error)),
  } as unknown as import("@logtape/logtape").Logger;
  releaseMemoryWhenQuiet({
    activity,
    clock,
    log,
    release: () => {
      calls++;
      throw new Error("no libc");
    },
  }, new AbortController().signal);
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS);
  assert.deepEqual(warnings, ["Could not give memory back: no libc"]);
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS);
  assert.equal(calls, 2);
});

Deno.test("a release's figures are logged at debug level", async () => {
  const activity = new Activity();
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = {
    debug: (message: string, props: Record<string, unknown>) =>
      lines.push(message.replace(/\{(\w+)\}/g, (_, key) => String(props[key]))),
  } as unknown as import("@logtape/logtape").Logger;
  const release = () => ({
    rssBefore: 122.4 * 2 ** 20,
    rssAfter: 96.8 * 2 ** 20,
    trimmed: true,
    ms: 67.54,
  });
  releaseMemoryWhenQuiet({ activity, clock, log, release }, new AbortController().signal);
  activity.begin()();
  await clock.tick(MEMORY_RELEASE_QUIET_MS);
  assert.deepEqual(lines, [
    "Gave memory back after 5000 ms without work: resident set 122.4 → 96.8 MiB in 67.5 ms",
  ]);
});
