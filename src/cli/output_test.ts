import assert from "node:assert/strict";
import { stdoutPrinter, type SyncWriter, writeAll } from "./output.ts";

/** A writer that takes at most `chunk` bytes a call, or throws `error` from the first call on. */
function writer(o: { chunk?: number; error?: Error } = {}) {
  const got: number[] = [];
  const w: SyncWriter & { text(): string } = {
    writeSync(bytes) {
      if (o.error) throw o.error;
      const n = Math.min(o.chunk ?? bytes.length, bytes.length);
      got.push(...bytes.subarray(0, n));
      return n;
    },
    text: () => new TextDecoder().decode(new Uint8Array(got)),
  };
  return w;
}

class Exited extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
const exit = (code: number): never => {
  throw new Exited(code);
};

Deno.test("writeAll writes the whole text however little each write takes", () => {
  const out = writer({ chunk: 7 });
  writeAll(out, "é".repeat(1000) + "end");
  assert.equal(out.text(), "é".repeat(1000) + "end");
});

Deno.test("the printer ends quietly on a broken pipe, and with one line and exit 1 on another failure", () => {
  const quiet = writer();
  assert.throws(
    () => stdoutPrinter(writer({ error: new Deno.errors.BrokenPipe("gone") }), quiet, exit)("x"),
    (e) => e instanceof Exited && e.code === 0,
  );
  assert.equal(quiet.text(), "");

  const err = writer();
  const full = new Error("No space left on device (os error 28)");
  assert.throws(
    () => stdoutPrinter(writer({ error: full }), err, exit)("x"),
    (e) => e instanceof Exited && e.code === 1,
  );
  assert.equal(
    err.text(),
    "teleport-email: cannot write the output: No space left on device (os error 28)\n",
  );
});
