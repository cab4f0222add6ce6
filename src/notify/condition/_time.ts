/**
 * Times as the condition functions read and compare them: Go's
 * `time.Parse(time.RFC3339, …)` (nanosecond precision, the zone offset
 * kept), `Time.Weekday` for `day`, and the "15:04" clock `clock_between`
 * reads with `time.ParseInLocation`. The plugin's environment has no time
 * zone (Teleport's `AccessRequestExpressionEnv.Timezone` is empty), so
 * clocks are read in UTC, as Teleport does then.
 */
import { quote } from "./_error.ts";
import { GoTime } from "./_values.ts";

const NS_PER_MS = 1_000_000n;
const NS_PER_SECOND = 1_000_000_000n;
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** Go's `time.Parse(time.RFC3339, text)`; throws an `Error` saying what is wrong. */
export function parseRfc3339(text: string): GoTime {
  const m = RFC3339.exec(text);
  if (!m) {
    throw new Error(
      `time ${quote(text)} is not in RFC 3339 form, such as "2024-05-01T10:00:00Z"`,
    );
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const outOfRange = (what: string) =>
    new Error(`time ${quote(text)} has its ${what} out of range`);
  if (month < 1 || month > 12) throw outOfRange("month");
  if (day < 1 || day > daysIn(year, month)) throw outOfRange("day");
  if (hour > 23) throw outOfRange("hour");
  if (minute > 59) throw outOfRange("minute");
  if (second > 59) throw outOfRange("second");
  let offset = 0;
  if (m[8] === undefined) {
    const hours = Number(m[10]);
    const minutes = Number(m[11]);
    if (hours > 23 || minutes > 59) throw outOfRange("time zone offset");
    offset = (m[9] === "-" ? -1 : 1) * (hours * 3600 + minutes * 60);
  }
  // Go keeps nine digits of the fraction and drops the rest.
  const nanos = m[7] ? BigInt((m[7].slice(1) + "000000000").slice(0, 9)) : 0n;
  const ms = utcMillis(year, month, day, hour, minute, second);
  return new GoTime(BigInt(ms) * NS_PER_MS + nanos - BigInt(offset) * NS_PER_SECOND, offset);
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysIn(year: number, month: number): number {
  return [31, isLeapYear(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
}

/** Epoch milliseconds of a UTC wall time (years 0–99 too, which `Date.UTC` would shift). */
function utcMillis(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  return date.getTime();
}

/** The wall-clock fields of `t` in its own zone. */
function wallClock(t: GoTime): Date {
  const ns = t.ns + BigInt(t.offset) * NS_PER_SECOND;
  // Floor division, so that instants before 1970 keep their calendar day.
  const ms = ns >= 0n ? ns / NS_PER_MS : -((-ns + NS_PER_MS - 1n) / NS_PER_MS);
  return new Date(Number(ms));
}

/** `t.Weekday().String()`: "Monday", … in the zone `t` was written with. */
export function weekday(t: GoTime): string {
  return WEEKDAYS[wallClock(t).getUTCDay()]!;
}

/**
 * Go's `time.ParseInLocation("15:04", text, loc)`: an hour of one or two
 * digits (0–23), ":", then exactly two digits of minutes (0–59).
 */
export function parseClock(text: string): { hour: number; minute: number } {
  const m = /^([0-9]{1,2})(?![0-9]):([0-9]{2})(.*)$/s.exec(text);
  if (!m) throw new Error(`clock ${quote(text)} is not in the form "15:04"`);
  const hour = Number(m[1]);
  const minute = Number(m[2]);
  if (hour > 23) throw new Error(`clock ${quote(text)} has its hour out of range`);
  if (minute > 59) throw new Error(`clock ${quote(text)} has its minute out of range`);
  if (m[3]) {
    throw new Error(`clock ${quote(text)} has extra text ${quote(m[3] ?? "")}`);
  }
  return { hour, minute };
}

/**
 * Teleport's `clock_between(t, start, end)` in UTC: whether `t` is strictly
 * after `start` and strictly before `end` o'clock on its own UTC day.
 */
export function clockBetween(t: GoTime, start: string, end: string): boolean {
  const from = parseClockOrSay("start", start);
  const to = parseClockOrSay("end", end);
  const day = wallClock(new GoTime(t.ns, 0));
  const at = (clock: { hour: number; minute: number }) =>
    BigInt(
      utcMillis(
        day.getUTCFullYear(),
        day.getUTCMonth() + 1,
        day.getUTCDate(),
        clock.hour,
        clock.minute,
        0,
      ),
    ) * NS_PER_MS;
  return t.ns > at(from) && t.ns < at(to);
}

function parseClockOrSay(which: "start" | "end", text: string): { hour: number; minute: number } {
  try {
    return parseClock(text);
  } catch (error) {
    throw new Error(`invalid ${which} interval: ${(error as Error).message}`);
  }
}
