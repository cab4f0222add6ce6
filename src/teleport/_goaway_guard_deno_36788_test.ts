import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import { setImmediate } from "node:timers";
import type * as tls from "node:tls";
import { type Goaway, GoawayGuard, Http2FrameScanner } from "./_goaway_guard_deno_36788.ts";

/** One HTTP/2 frame: 9-byte header, then the payload. */
function frame(type: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

function goawayFrame(lastStreamId: number, errorCode: number, debug: string): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastStreamId, 0);
  p.writeUInt32BE(errorCode, 4);
  return frame(7, 0, Buffer.concat([p, Buffer.from(debug)]));
}

/** Feeds `chunks`; returns what passed and the GOAWAYs reported. */
function scan(chunks: Uint8Array[]): { passed: Buffer; goaways: Goaway[] } {
  const scanner = new Http2FrameScanner();
  const passed: Uint8Array[] = [];
  const goaways: Goaway[] = [];
  for (const c of chunks) {
    const { pass, goaway } = scanner.feed(c);
    passed.push(pass);
    if (goaway) goaways.push(goaway);
  }
  return { passed: Buffer.concat(passed), goaways };
}

function bytewise(b: Buffer): Buffer[] {
  return [...b].map((x) => Buffer.from([x]));
}

Deno.test("Http2FrameScanner passes frames through and stops at GOAWAY", () => {
  const settings = frame(4, 0, Buffer.alloc(12, 1));
  const data = frame(0, 1, Buffer.from("hello"));
  const ping = frame(6, 0, Buffer.alloc(8, 2));
  const before = Buffer.concat([settings, data, ping]);
  const goaway = goawayFrame(3, 11, "too_many_pings");
  const after = frame(0, 3, Buffer.from("late"));

  for (
    const chunks of [[before], bytewise(before), [before.subarray(0, 10), before.subarray(10)]]
  ) {
    assert.deepEqual(scan(chunks), { passed: before, goaways: [] });
  }
  const want = { lastStreamId: 3, errorCode: 11, debugData: "too_many_pings" };
  const all = Buffer.concat([before, goaway, after]);
  for (
    const chunks of [
      [all],
      bytewise(all),
      [
        before.subarray(0, 20),
        Buffer.concat([before.subarray(20), goaway.subarray(0, 4)]),
        goaway.subarray(4),
        after,
      ],
    ]
  ) {
    assert.deepEqual(scan(chunks), { passed: before, goaways: [want] });
  }
  // A GOAWAY first, and one without debug data.
  assert.deepEqual(scan([goawayFrame(0, 0, ""), settings]), {
    passed: Buffer.alloc(0),
    goaways: [{ lastStreamId: 0, errorCode: 0, debugData: "" }],
  });
});

/**
 * A stand-in for the guard's TLS socket that keeps each write it is given
 * and completes it only when told (a socket's writes complete on a later turn).
 */
function recordingInner() {
  const writes: string[] = [];
  const pending: (() => void)[] = [];
  const inner = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      writes.push(String(chunk));
      pending.push(() => done());
    },
  });
  const complete = () => pending.splice(0).forEach((done) => done());
  return { writes, complete, inner: inner as unknown as tls.TLSSocket };
}

/** One turn of the event loop (the guard uncorks at the end of the tick it corked in). */
const turn = () => new Promise<void>((r) => setImmediate(r));

Deno.test("GoawayGuard hands the frames of one tick to the TLS socket as one write", async () => {
  const { writes, complete, inner } = recordingInner();
  const guard = new GoawayGuard(inner, () => {});
  const done: string[] = [];
  // A call's HEADERS and DATA, as Deno's HTTP/2 writes them: one after the other, at once.
  guard.write(Buffer.from("HEADERS|"), () => done.push("headers"));
  guard.write(Buffer.from("DATA|"), () => done.push("data"));
  await turn();
  // Without the cork the DATA would still wait for the HEADERS' write to complete.
  assert.deepEqual(writes, ["HEADERS|DATA|"]);
  complete();
  await turn();
  assert.deepEqual(done, ["headers", "data"]);
  // A later tick's write is a write of its own; what comes while it is in flight goes together.
  guard.write(Buffer.from("PING|"));
  await turn();
  assert.deepEqual(writes, ["HEADERS|DATA|", "PING|"]);
  guard.write(Buffer.from("SETTINGS|"));
  await turn();
  guard.write(Buffer.from("WINDOW_UPDATE|"));
  await turn();
  assert.deepEqual(writes, ["HEADERS|DATA|", "PING|"]);
  complete();
  await turn();
  assert.deepEqual(writes, ["HEADERS|DATA|", "PING|", "SETTINGS|WINDOW_UPDATE|"]);
  guard.destroy();
});

Deno.test("GoawayGuard destroyed in the tick of a write still hands that write on", async () => {
  const { writes, inner } = recordingInner();
  const guard = new GoawayGuard(inner, () => {});
  // A last frame (an RST_STREAM, a GOAWAY of our own) and then the end, in one tick.
  guard.write(Buffer.from("RST_STREAM|"));
  guard.destroy();
  await turn();
  assert.deepEqual(writes, ["RST_STREAM|"]);
});
