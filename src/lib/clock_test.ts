import assert from "node:assert/strict";
import { FakeClock, MAX_TIMER_DELAY_MS, REAL_CLOCK, timerStep } from "./clock.ts";

Deno.test("FakeClock fires timers in due order and only when time reaches them", async () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push("b"), 200);
  clock.setTimeout(() => fired.push("a"), 100);
  const every = clock.setInterval(() => fired.push("i"), 150);
  await clock.tick(99);
  assert.deepEqual(fired, []);
  await clock.tick(1);
  assert.deepEqual(fired, ["a"]);
  await clock.tick(200);
  assert.deepEqual(fired, ["a", "i", "b", "i"]);
  every.cancel();
  await clock.tick(1_000);
  assert.deepEqual(fired, ["a", "i", "b", "i"]);
  assert.equal(clock.pendingTimers, 0);
  assert.equal(clock.now(), 1_300);
});

Deno.test("FakeClock lets promise chains settle between timers", async () => {
  const clock = new FakeClock(0);
  const seen: number[] = [];
  (async () => {
    for (let i = 0; i < 3; i++) {
      await clock.sleep(10);
      await Promise.resolve();
      seen.push(clock.now());
    }
  })();
  await clock.tick(30);
  assert.deepEqual(seen, [10, 20, 30]);
});

Deno.test("Clock.sleep rejects with the signal's reason when aborted", async () => {
  for (const clock of [new FakeClock(0), REAL_CLOCK]) {
    const stop = new AbortController();
    const sleeping = clock.sleep(60_000, stop.signal);
    stop.abort(new Error("stop"));
    await assert.rejects(sleeping, /stop/);
    await assert.rejects(clock.sleep(1, stop.signal), /stop/);
  }
});

Deno.test("timers longer than setTimeout's limit are chained, never fired early", () => {
  const now = 1_000;
  assert.deepEqual(timerStep(now + 5, now), { delay: 5, final: true });
  assert.deepEqual(timerStep(now - 5, now), { delay: 0, final: true });
  assert.deepEqual(timerStep(now + MAX_TIMER_DELAY_MS, now), {
    delay: MAX_TIMER_DELAY_MS,
    final: true,
  });
  // "2562047h", the longest Go duration, takes many steps and none fires early.
  const due = now + 2_562_047 * 3_600_000;
  let at = now;
  let steps = 0;
  for (;;) {
    const step = timerStep(due, at);
    steps++;
    at += step.delay;
    if (step.final) break;
    assert.ok(at < due);
  }
  assert.equal(at, due);
  assert.ok(steps > 4_000);
});

Deno.test("FakeClock.skip fires each due timer once, as after a suspend", async () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.setInterval(() => fired.push("i"), 60_000);
  clock.setTimeout(() => fired.push("t"), 30_000);
  clock.setTimeout(() => fired.push("later"), 10 * 3_600_000);
  await clock.skip(3_600_000);
  assert.deepEqual(fired, ["t", "i"]);
  assert.equal(clock.nextDue, 3_660_000);
  await clock.tick(60_000);
  assert.deepEqual(fired, ["t", "i", "i"]);
});
