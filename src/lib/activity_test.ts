import assert from "node:assert/strict";
import { Activity } from "./activity.ts";

Deno.test("Activity resolves idle() only when every piece of work ended", async () => {
  const activity = new Activity();
  await activity.idle();
  const endA = activity.begin();
  const endB = activity.begin();
  let idle = false;
  const waiting = activity.idle().then(() => (idle = true));
  endA();
  endA(); // twice is once
  await Promise.resolve();
  assert.equal(activity.working, 1);
  assert.equal(idle, false);
  endB();
  await waiting;
  assert.equal(idle, true);
  assert.equal(activity.working, 0);
});

Deno.test("Activity: work waiting for a timer counts unless asked to be ignored", async () => {
  const activity = new Activity();
  const endTimer = activity.begin("timer");
  let all = false;
  const allIdle = activity.idle().then(() => (all = true));
  await activity.idle(false);
  assert.equal(activity.waiting, 1);
  await Promise.resolve();
  assert.equal(all, false);
  endTimer();
  await allIdle;
  assert.equal(all, true);
});

Deno.test("Activity tells its listeners of each start and end until they unsubscribe", () => {
  const activity = new Activity();
  const seen: number[] = [];
  const unsubscribe = activity.onChange(() => seen.push(activity.working));
  const end = activity.begin();
  end();
  end(); // an end already told is not told again
  unsubscribe();
  activity.begin();
  assert.deepEqual(seen, [1, 0]);
});
