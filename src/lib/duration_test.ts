import assert from "node:assert/strict";
import { parseDuration } from "./duration.ts";

Deno.test("parseDuration accepts Go duration strings", async (t) => {
  const cases: Array<[string, number]> = [
    ["0", 0],
    ["0s", 0],
    ["+5s", 5_000],
    ["30s", 30_000],
    ["1m", 60_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["1.s", 1_000],
    ["500ms", 500],
    ["2h45m30s", 9_930_000],
    ["1m1m", 120_000],
    ["1500us", 1.5],
    ["1500\u00b5s", 1.5],
    ["1500\u03bcs", 1.5],
    ["2000000ns", 2],
  ];
  for (const [text, ms] of cases) {
    await t.step(`${JSON.stringify(text)} is ${ms} ms`, () => {
      assert.equal(parseDuration(text), ms);
    });
  }
});

Deno.test("parseDuration rejects malformed, negative and overlong durations", async (t) => {
  const cases: Array<[string, ErrorConstructor, RegExp]> = [
    ["", SyntaxError, /^Invalid duration "": empty$/],
    ["+", SyntaxError, /^Invalid duration "\+": empty$/],
    ["5", SyntaxError, /^Invalid duration "5": missing unit after "5"$/],
    ["5x", SyntaxError, /^Invalid duration "5x": unknown unit "x" \(use ns, us, ms, s, m or h\)$/],
    ["1d", SyntaxError, /unknown unit "d"/],
    ["1M", SyntaxError, /unknown unit "M"/],
    ["1 m", SyntaxError, /unknown unit " m"/],
    ["m", SyntaxError, /expected a number followed by a unit/],
    [".s", SyntaxError, /expected a number followed by a unit/],
    ["1h 30m", SyntaxError, /unknown unit "h "/],
    ["-1m", RangeError, /^Invalid duration "-1m": must not be negative$/],
    ["-0", RangeError, /must not be negative/],
    [
      "3000000h",
      RangeError,
      /^Invalid duration "3000000h": longer than Go's longest duration, 2562047h47m16\.854775807s$/,
    ],
  ];
  for (const [text, type, message] of cases) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseDuration(text), (error: unknown) => {
        assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
        assert.match(error.message, message);
        return true;
      });
    });
  }
});
