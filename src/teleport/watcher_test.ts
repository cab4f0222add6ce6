import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { eventKey, runWatcher, type WatcherOptions } from "./watcher.ts";
import { EventMarks } from "./_event_marks.ts";
import { type AccessRequest, TeleportError, type WatchEvent } from "./types.ts";
import { type Clock, FakeClock, REAL_CLOCK } from "../lib/clock.ts";
import { newAccessRequest } from "../../tests/requests.ts";

const put = (id: string, state: AccessRequest["state"] = "PENDING"): WatchEvent => ({
  type: "put",
  kind: "access_request",
  request: newAccessRequest(id, { state }),
});
const INIT: WatchEvent = { type: "init" };

/** A fake client whose n-th watch() call plays the n-th script, then stays open or ends. */
function scriptedClient(scripts: { events: WatchEvent[]; then: "end" | "hang" | Error }[]) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    async *watch(_kinds: readonly string[], signal?: AbortSignal): AsyncIterable<WatchEvent> {
      const script = scripts[Math.min(calls++, scripts.length - 1)]!;
      for (const event of script.events) {
        await Promise.resolve();
        yield event;
      }
      if (script.then === "end") return;
      if (script.then instanceof Error) throw script.then;
      await new Promise<void>((_, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    },
  };
}

/** The real clock, but for the reconnect backoff's sleep, which the test records or skips. */
function clockWithSleep(sleep: (ms: number) => Promise<void>): Clock {
  return { ...REAL_CLOCK, sleep };
}

function baseOptions(overrides: Partial<WatcherOptions>): WatcherOptions {
  return {
    client: scriptedClient([{ events: [INIT], then: "hang" }]),
    kinds: ["access_request"],
    handleEvent: () => Promise.resolve(),
    reconcile: () => Promise.resolve([]),
    log: getLogger(["test"]),
    clock: clockWithSleep(() => Promise.resolve()),
    random: () => 0.5,
    ...overrides,
  };
}

async function until(condition: () => boolean, ms = 2000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 2));
  }
}

Deno.test("events of one request are handled in arrival order after INIT", async () => {
  const handled: string[] = [];
  const stop = new AbortController();
  const client = scriptedClient([{
    events: [INIT, put("a"), put("b"), put("a", "APPROVED"), {
      type: "delete",
      kind: "access_request",
      name: "a",
    }],
    then: "hang",
  }]);
  const done = runWatcher(
    baseOptions({
      client,
      handleEvent: async (event) => {
        if (event.type === "put" && event.kind === "access_request" && event.request.id === "a") {
          await new Promise((r) => setTimeout(r, 10)); // slow: b must not wait for it
        }
        handled.push(
          event.type === "delete"
            ? `delete ${event.name}`
            : `${eventKey(event)} ${event.kind === "access_request" ? event.request.state : ""}`,
        );
      },
    }),
    stop.signal,
  );
  await until(() => handled.length === 4);
  stop.abort();
  await done;
  assert.deepEqual(handled, [
    "access_request/b PENDING",
    "access_request/a PENDING",
    "access_request/a APPROVED",
    "delete a",
  ]);
});

Deno.test("a dropped stream is reopened with backoff and reconcile runs after every INIT", async () => {
  const delays: number[] = [];
  let reconciles = 0;
  const stop = new AbortController();
  const client = scriptedClient([
    { events: [INIT, put("a")], then: new Error("connection reset") },
    { events: [], then: new Error("connection refused") },
    { events: [INIT], then: "hang" },
  ]);
  const inits: boolean[] = [];
  const done = runWatcher(
    baseOptions({
      client,
      clock: clockWithSleep((ms) => (delays.push(ms), Promise.resolve())),
      reconcile: () => (reconciles++, Promise.resolve([])),
      onInit: (_init, first) => inits.push(first),
    }),
    stop.signal,
  );
  await until(() => reconciles === 2);
  stop.abort();
  await done;
  assert.equal(client.calls, 3);
  assert.deepEqual(inits, [true, false]);
  // attempt 0 after a healthy stream (reset), then attempt 1: 20 ms and 40 ms scaled by jitter 0.75.
  assert.deepEqual(delays, [15, 30]);
});

/** Runs one stream whose reconciles are `reconcile`, until `done()`; the backoff sleeps it asked for. */
async function reconcileRun(
  reconcile: WatcherOptions["reconcile"],
  done: () => boolean,
): Promise<number[]> {
  const delays: number[] = [];
  const stop = new AbortController();
  const running = runWatcher(
    baseOptions({
      clock: clockWithSleep((ms) => (delays.push(ms), Promise.resolve())),
      reconcile,
    }),
    stop.signal,
  );
  await until(done);
  stop.abort();
  await running;
  return delays;
}

Deno.test("a reconcile that fails is tried again with backoff while the stream stays up", async () => {
  const ran: string[] = [];
  let reconciles = 0;
  const delays = await reconcileRun(() => {
    // The first listing meets a deadline; the second answers.
    if (++reconciles === 1) {
      return Promise.reject(
        new TeleportError("transient", "listing access requests failed: deadline exceeded"),
      );
    }
    return Promise.resolve([{
      key: "access_request/a",
      run: () => (ran.push("a"), Promise.resolve()),
    }]);
  }, () => ran.length === 1);
  assert.equal(reconciles, 2);
  // One stream only: the retry waited 0.5 s scaled by jitter 0.75, no reconnect.
  assert.deepEqual(delays, [375]);
});

Deno.test("a reconcile refused for good is not retried (it would only repeat)", async () => {
  let reconciles = 0;
  const delays = await reconcileRun(() => {
    reconciles++;
    return Promise.reject(new TeleportError("denied", "access denied to access_request"));
  }, () => reconciles === 1);
  assert.equal(reconciles, 1);
  assert.deepEqual(delays, []);
});

Deno.test("no INIT within the timeout: the stream is dropped and reopened", async () => {
  const stop = new AbortController();
  const client = scriptedClient([
    { events: [], then: "hang" },
    { events: [INIT], then: "hang" },
  ]);
  const errors: unknown[] = [];
  let ready = false;
  const done = runWatcher(
    baseOptions({
      client,
      initTimeoutMs: 20,
      onDisconnect: (e) => errors.push(e),
      onInit: () => (ready = true),
    }),
    stop.signal,
  );
  await until(() => ready);
  stop.abort();
  await done;
  assert.match(String(errors[0]), /No INIT event within 20 ms/);
});

Deno.test("a reconcile task is skipped when a newer event for the request arrived", async () => {
  const stop = new AbortController();
  const ran: string[] = [];
  let releaseReconcile!: () => void;
  const reconcileGate = new Promise<void>((r) => (releaseReconcile = r));
  const client = scriptedClient([{ events: [INIT, put("a", "APPROVED")], then: "hang" }]);
  const done = runWatcher(
    baseOptions({
      client,
      handleEvent: (event) => (ran.push(`event ${eventKey(event)}`), Promise.resolve()),
      reconcile: async () => {
        await reconcileGate;
        return ["a", "b"].map((id) => ({
          key: `access_request/${id}`,
          run: () => (ran.push(`reconcile ${id}`), Promise.resolve()),
        }));
      },
    }),
    stop.signal,
  );
  await until(() => ran.length === 1);
  releaseReconcile();
  await until(() => ran.length === 2);
  stop.abort();
  await done;
  assert.deepEqual(ran, ["event access_request/a", "reconcile b"]);
});

Deno.test("a stream that stays up keeps nothing per request once its reconcile is done", async () => {
  const stop = new AbortController();
  const marks = new EventMarks();
  let releaseReconcile!: () => void;
  const reconcileGate = new Promise<void>((r) => (releaseReconcile = r));
  let reconcileDone = false;
  const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => `r${from + i}`);
  const client = scriptedClient([{
    events: [INIT, ...ids(0, 50).map((id) => put(id))],
    then: "hang",
  }]);
  let handled = 0;
  const more: WatchEvent[] = ids(50, 2_000).map((id) => put(id));
  const done = runWatcher(
    baseOptions({
      client: {
        async *watch(kinds, signal) {
          for await (const event of client.watch(kinds, signal)) {
            yield event;
            // The events after the reconcile: the stream as it runs for months.
            if (
              event.type === "put" && event.kind === "access_request" && event.request.id === "r49"
            ) {
              await until(() => reconcileDone);
              yield* more;
            }
          }
        },
      },
      marks,
      handleEvent: () => (handled++, Promise.resolve()),
      reconcile: async () => {
        await reconcileGate;
        return [];
      },
    }),
    stop.signal,
  );
  // While the reconcile runs, the events that came since its start are kept (it skips them).
  await until(() => handled === 50);
  assert.equal(marks.size, 50);
  releaseReconcile();
  await until(() => marks.size === 0);
  reconcileDone = true;
  await until(() => handled === 2_050);
  assert.equal(marks.size, 0);
  stop.abort();
  await done;
});

Deno.test("stopping lets an in-flight handler finish within the grace period", async () => {
  const stop = new AbortController();
  let finished = false;
  let started = false;
  const done = runWatcher(
    baseOptions({
      client: scriptedClient([{ events: [INIT, put("a")], then: "hang" }]),
      handleEvent: async (_e, signal) => {
        started = true;
        await new Promise((r) => setTimeout(r, 30));
        finished = !signal.aborted;
      },
    }),
    stop.signal,
  );
  await until(() => started);
  stop.abort();
  await done;
  assert.equal(finished, true);
});

Deno.test("stopping while the stream waits for room in a full queue: the grace runs from the stop, the waiting event is not started", async () => {
  const stop = new AbortController();
  const started: string[] = [];
  const done = runWatcher(
    baseOptions({
      client: scriptedClient([{ events: [INIT, put("a"), put("b")], then: "hang" }]),
      maxInFlight: 1,
      shutdownGraceMs: 20,
      handlerDeadlineMs: 60_000,
      // A send that keeps retrying until it is aborted (SMTP down).
      handleEvent: (event, signal) => {
        started.push(eventKey(event));
        return new Promise((resolve) => signal.addEventListener("abort", () => resolve()));
      },
    }),
    stop.signal,
  );
  await until(() => started.length === 1);
  stop.abort();
  await done;
  assert.deepEqual(started, ["access_request/a"]);
});

Deno.test("a handler still running at its deadline is aborted, and the next event is handled", async () => {
  const stop = new AbortController();
  const clock = new FakeClock();
  const reasons: unknown[] = [];
  const handled: string[] = [];
  const done = runWatcher(
    baseOptions({
      client: scriptedClient([{ events: [INIT, put("a"), put("a", "APPROVED")], then: "hang" }]),
      clock,
      handlerDeadlineMs: 60_000,
      handleEvent: (event, signal) => {
        handled.push(eventKey(event));
        if (handled.length > 1) return Promise.resolve();
        return new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => (reasons.push(signal.reason), resolve()))
        );
      },
    }),
    stop.signal,
  );
  await until(() => handled.length === 1);
  await clock.tick(59_999);
  assert.equal(reasons.length, 0);
  await clock.tick(1);
  await until(() => handled.length === 2);
  assert.equal((reasons[0] as DOMException).name, "TimeoutError");
  stop.abort();
  await done;
  // Finished tasks left no deadline timer running.
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("after the grace period an in-flight handler is aborted", async () => {
  const stop = new AbortController();
  let started = false;
  let abortedWith: unknown;
  const done = runWatcher(
    baseOptions({
      client: scriptedClient([{ events: [INIT, put("a")], then: "hang" }]),
      shutdownGraceMs: 10,
      handleEvent: (_e, signal) =>
        new Promise<void>((resolve) => {
          started = true;
          signal.addEventListener("abort", () => {
            abortedWith = signal.reason;
            resolve();
          });
        }),
    }),
    stop.signal,
  );
  await until(() => started);
  stop.abort();
  await done;
  assert.match(String(abortedWith), /Shutdown grace period over/);
});
