import assert from "node:assert/strict";
import { clockBetween, parseClock, parseRfc3339, weekday } from "./_time.ts";
import { GO_ZERO_TIME, GoTime } from "./_values.ts";

Deno.test("parseRfc3339 keeps nanoseconds and the zone offset", () => {
  const t = parseRfc3339("2024-05-01T12:00:00.123456789+02:00");
  assert.equal(t.ns, BigInt(Date.parse("2024-05-01T10:00:00Z")) * 1_000_000n + 123_456_789n);
  assert.equal(t.offset, 7200);
  assert.equal(parseRfc3339("2024-05-01T10:00:00.1234567891Z").ns % 1_000_000_000n, 123_456_789n);
  assert.equal(parseRfc3339("0001-01-01T00:00:00Z").ns, GO_ZERO_TIME.ns);
  assert.equal(parseRfc3339("2024-02-29T00:00:00Z").offset, 0);
  assert.throws(() => parseRfc3339("2023-02-29T00:00:00Z"), /has its day out of range/);
  assert.throws(() => parseRfc3339("2024-05-01 10:00:00Z"), /is not in RFC 3339 form/);
  assert.throws(() => parseRfc3339("2024-05-01T10:00:00+24:00"), /time zone offset out of range/);
});

Deno.test("weekday reads the day in the time's own zone", () => {
  assert.equal(weekday(parseRfc3339("2024-05-01T10:00:00Z")), "Wednesday");
  assert.equal(weekday(parseRfc3339("2024-05-01T23:30:00-05:00")), "Wednesday");
  assert.equal(weekday(parseRfc3339("2024-05-02T04:30:00Z")), "Thursday");
  assert.equal(weekday(GO_ZERO_TIME), "Monday");
  assert.equal(weekday(parseRfc3339("1969-12-31T23:59:59.999999999Z")), "Wednesday");
});

Deno.test('parseClock is Go\'s "15:04" layout', () => {
  assert.deepEqual(parseClock("09:05"), { hour: 9, minute: 5 });
  assert.deepEqual(parseClock("9:05"), { hour: 9, minute: 5 });
  assert.deepEqual(parseClock("23:59"), { hour: 23, minute: 59 });
  assert.throws(() => parseClock("9:5"), /is not in the form "15:04"/);
  assert.throws(() => parseClock("24:00"), /hour out of range/);
  assert.throws(() => parseClock("12:60"), /minute out of range/);
  assert.throws(() => parseClock("12:00pm"), /has extra text "pm"/);
  assert.throws(() => parseClock(" 12:00"), /is not in the form/);
});

Deno.test("clockBetween compares with the clock on the time's UTC day, ends excluded", () => {
  const t = parseRfc3339("2024-05-01T10:00:00Z");
  assert.equal(clockBetween(t, "09:59", "10:01"), true);
  assert.equal(clockBetween(t, "10:00", "10:01"), false);
  assert.equal(clockBetween(t, "09:00", "10:00"), false);
  assert.equal(clockBetween(new GoTime(t.ns + 1n), "10:00", "10:01"), true);
  assert.equal(clockBetween(parseRfc3339("2024-05-01T23:30:00-05:00"), "04:00", "05:00"), true);
  assert.equal(clockBetween(GO_ZERO_TIME, "00:00", "01:00"), false);
  assert.throws(() => clockBetween(t, "x", "10:00"), /^Error: invalid start interval: clock "x"/);
});
