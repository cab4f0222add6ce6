import assert from "node:assert/strict";
import { KeyedQueue } from "./keyed_queue.ts";

/** Lets every pending promise callback run (the queue is pure promise chains: no time passes). */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

const mustNotFail = (error: unknown) => {
  throw error;
};

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

Deno.test("tasks of one key run in push order, one at a time", async () => {
  const queue = new KeyedQueue(10);
  const log: string[] = [];
  const gate = deferred();
  await queue.push("a", async () => {
    log.push("a1 start");
    await gate.promise;
    log.push("a1 end");
  }, mustNotFail);
  await queue.push("a", () => {
    log.push("a2");
    return Promise.resolve();
  }, mustNotFail);
  await queue.push("b", () => {
    log.push("b1");
    return Promise.resolve();
  }, mustNotFail);
  await settled();
  assert.deepEqual(log, ["a1 start", "b1"], "b runs while a1 waits; a2 waits for a1");
  gate.resolve();
  await queue.onIdle();
  assert.deepEqual(log, ["a1 start", "b1", "a1 end", "a2"]);
});

Deno.test("push waits when the limit of queued tasks is reached", async () => {
  const queue = new KeyedQueue(2);
  const gate = deferred();
  await queue.push("a", () => gate.promise, mustNotFail);
  await queue.push("b", () => gate.promise, mustNotFail);
  let accepted = false;
  const third = queue.push("c", () => Promise.resolve(), mustNotFail).then(() => (accepted = true));
  await settled();
  assert.equal(accepted, false);
  assert.equal(queue.size, 2);
  gate.resolve();
  await third;
  assert.equal(accepted, true);
  await queue.onIdle();
  assert.equal(queue.size, 0);
});

Deno.test("a failing task reports its error and does not block its key", async () => {
  const queue = new KeyedQueue(4);
  const errors: unknown[] = [];
  const ran: string[] = [];
  await queue.push("a", () => Promise.reject(new Error("boom")), (e) => errors.push(e));
  await queue.push("a", () => {
    ran.push("after");
    return Promise.resolve();
  }, (e) => errors.push(e));
  await queue.onIdle();
  assert.equal((errors[0] as Error).message, "boom");
  assert.deepEqual(ran, ["after"]);
});

Deno.test("a push waiting for room gives up when its signal aborts, and the room goes to the next", async () => {
  const queue = new KeyedQueue(1);
  const gate = deferred();
  assert.equal(await queue.push("a", () => gate.promise, mustNotFail), true);
  const stop = new AbortController();
  const ran: string[] = [];
  const given = queue.push("b", () => (ran.push("b"), Promise.resolve()), mustNotFail, stop.signal);
  const next = queue.push("c", () => (ran.push("c"), Promise.resolve()), mustNotFail);
  await settled();
  stop.abort();
  assert.equal(await given, false);
  // Not queued: once stopped, a push is refused at once.
  assert.equal(await queue.push("d", () => Promise.resolve(), mustNotFail, stop.signal), false);
  gate.resolve();
  assert.equal(await next, true);
  await queue.onIdle();
  assert.deepEqual(ran, ["c"]);
});
