import assert from "node:assert/strict";
import { Slots } from "./slots.ts";

Deno.test("slots: at most size holders, the others served in the order they came", async () => {
  const slots = new Slots(2);
  const order: string[] = [];
  await slots.acquire();
  await slots.acquire();
  const waiters = ["a", "b", "c"].map((name) => slots.acquire().then(() => order.push(name)));
  await Promise.resolve();
  assert.deepEqual(order, []);
  assert.equal(slots.waiting, 3);
  slots.release();
  await waiters[0];
  assert.deepEqual(order, ["a"]);
  slots.release();
  slots.release();
  await Promise.all(waiters);
  assert.deepEqual(order, ["a", "b", "c"]);
  assert.equal(slots.waiting, 0);
});

Deno.test("slots: an aborted waiter leaves the line with the signal's reason", async () => {
  const slots = new Slots(1);
  await slots.acquire();
  const controller = new AbortController();
  const aborted = slots.acquire(controller.signal);
  const next = slots.acquire();
  controller.abort(new Error("shutting down"));
  await assert.rejects(aborted, /shutting down/);
  assert.equal(slots.waiting, 1);
  slots.release();
  await next; // the slot went to the waiter behind, not to the one that left
  assert.equal(slots.waiting, 0);
  await assert.rejects(slots.acquire(controller.signal), /shutting down/);
});

Deno.test("slots: a size below 1 is refused", () => {
  assert.throws(() => new Slots(0), RangeError);
  assert.throws(() => new Slots(Number.NaN), RangeError);
});

Deno.test("slots: tryAcquire takes a free slot at once and never waits; idle when none is held", async () => {
  const slots = new Slots(2);
  assert.equal(slots.idle, true);
  assert.equal(slots.tryAcquire(), true);
  assert.equal(slots.idle, false);
  await slots.acquire();
  assert.equal(slots.tryAcquire(), false);
  assert.equal(slots.waiting, 0);
  slots.release();
  slots.release();
  assert.equal(slots.idle, true);
});
