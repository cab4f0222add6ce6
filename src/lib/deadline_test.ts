import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { deadline } from "./deadline.ts";

Deno.test("a deadline aborts its signal when the time is up, with a TimeoutError", async () => {
  const clock = new FakeClock();
  const parent = new AbortController();
  const d = deadline(parent.signal, 1_000, clock);
  await clock.tick(999);
  assert.equal(d.signal.aborted, false);
  await clock.tick(1);
  assert.equal(d.signal.aborted, true);
  assert.equal((d.signal.reason as DOMException).name, "TimeoutError");
});

Deno.test("a deadline follows its parent's abort and reason", () => {
  const clock = new FakeClock();
  const parent = new AbortController();
  const d = deadline(parent.signal, 1_000, clock);
  parent.abort(new Error("stopping"));
  assert.equal(d.signal.aborted, true);
  assert.equal(String(d.signal.reason), "Error: stopping");
  assert.equal(clock.pendingTimers, 0);
  const already = deadline(parent.signal, 1_000, clock);
  assert.equal(already.signal.aborted, true);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("a released deadline leaves no timer and no listener behind", async () => {
  const clock = new FakeClock();
  const parent = new AbortController();
  let listeners = 0;
  const signal = parent.signal;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener =
    ((...args: Parameters<typeof add>) => (listeners++, add(...args))) as typeof add;
  signal.removeEventListener =
    ((...args: Parameters<typeof remove>) => (listeners--, remove(...args))) as typeof remove;
  for (let i = 0; i < 1_000; i++) deadline(signal, 600_000, clock).release();
  assert.equal(clock.pendingTimers, 0);
  assert.equal(listeners, 0);
  // Released work is not aborted later, by time or by the parent.
  const d = deadline(signal, 10, clock);
  d.release();
  await clock.tick(20);
  parent.abort();
  assert.equal(d.signal.aborted, false);
});
