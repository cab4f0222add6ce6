import assert from "node:assert/strict";
import { EventMarks } from "./_event_marks.ts";

Deno.test("events while no reconcile runs are not kept", () => {
  const marks = new EventMarks();
  for (let i = 0; i < 10_000; i++) marks.note(`access_request/${i}`);
  assert.equal(marks.size, 0);
  const mark = marks.begin();
  assert.equal(marks.changedSince("access_request/1", mark), false);
});

Deno.test("a reconcile sees the events after its mark, and they are forgotten when it ends", () => {
  const marks = new EventMarks();
  marks.note("access_request/a");
  const mark = marks.begin();
  marks.note("access_request/b");
  assert.equal(marks.changedSince("access_request/a", mark), false);
  assert.equal(marks.changedSince("access_request/b", mark), true);
  marks.end(mark);
  assert.equal(marks.size, 0);
  marks.note("access_request/c");
  assert.equal(marks.size, 0);
});

Deno.test("overlapping reconciles keep what the oldest one still needs", () => {
  const marks = new EventMarks();
  const old = marks.begin();
  marks.note("access_request/a");
  const recent = marks.begin();
  marks.note("access_request/b");
  marks.note("access_request/a"); // a's newest event is after the recent mark too
  marks.end(old);
  assert.equal(marks.size, 2);
  assert.equal(marks.changedSince("access_request/a", recent), true);
  assert.equal(marks.changedSince("access_request/b", recent), true);
  marks.end(recent);
  assert.equal(marks.size, 0);

  // Ended the other way round: the older one keeps its view until it ends.
  const first = marks.begin();
  marks.note("access_request/x");
  const second = marks.begin();
  marks.end(second);
  assert.equal(marks.changedSince("access_request/x", first), true);
  marks.end(first);
  assert.equal(marks.size, 0);
});

Deno.test("two reconciles with the same mark both count", () => {
  const marks = new EventMarks();
  const one = marks.begin();
  const two = marks.begin();
  assert.equal(one, two);
  marks.note("access_request/a");
  marks.end(one);
  assert.equal(marks.changedSince("access_request/a", two), true);
  marks.end(two);
  assert.equal(marks.size, 0);
});
