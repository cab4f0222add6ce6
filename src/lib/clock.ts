/**
 * The one clock: wall time, timers and abortable sleeps. Everything that
 * waits or reads the time takes a `Clock` (default `REAL_CLOCK`), so tests
 * drive time with `FakeClock` (modelled on std's `FakeTime`) instead of
 * sleeping. Timers longer than what `setTimeout` honours are chained, never
 * fired early.
 */

/** Longest delay `setTimeout` honours (2^31 - 1 ms, ~24.8 days); longer ones would fire at once. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A timer handle of a `Clock`. */
export interface Timer {
  /** Cancels the timer; harmless when it already fired. */
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` (clamped to ≥ 0; any length, also beyond 24.8 days). */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Runs `fn` every `ms` (≥ 1) until cancelled. */
  setInterval(fn: () => void, ms: number): Timer;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Sleeps on `clock`, abortable: the shared implementation of `Clock.sleep`. */
function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The next `setTimeout` step towards `due`: what is left, at most
 * `MAX_TIMER_DELAY_MS`; `final` is false when another step must follow.
 */
export function timerStep(due: number, now: number): { delay: number; final: boolean } {
  const left = Math.max(0, due - now);
  return left > MAX_TIMER_DELAY_MS
    ? { delay: MAX_TIMER_DELAY_MS, final: false }
    : { delay: left, final: true };
}

function realTimeout(fn: () => void, ms: number): Timer {
  let id: ReturnType<typeof setTimeout>;
  const due = Date.now() + Math.max(0, ms);
  const arm = () => {
    const step = timerStep(due, Date.now());
    id = setTimeout(step.final ? fn : arm, step.delay);
  };
  arm();
  return { cancel: () => clearTimeout(id) };
}

/** The clock of the process. */
export const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: realTimeout,
  setInterval(fn, ms) {
    const period = Math.max(1, ms);
    if (period <= MAX_TIMER_DELAY_MS) {
      const id = setInterval(fn, period);
      return { cancel: () => clearInterval(id) };
    }
    let timer: Timer;
    let cancelled = false;
    const again = () => {
      timer = realTimeout(() => {
        if (cancelled) return;
        again();
        fn();
      }, period);
    };
    again();
    return {
      cancel: () => {
        cancelled = true;
        timer.cancel();
      },
    };
  },
  sleep(ms, signal) {
    return sleepOn(REAL_CLOCK, ms, signal);
  },
};

interface FakeTimer {
  readonly seq: number;
  due: number;
  readonly period: number | undefined;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Lets pending promise callbacks and I/O callbacks run (one real macrotask turn). */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * A clock that moves only when told to. `tick` advances it, firing due
 * timers in order and letting promise chains settle between them, so code
 * that awaits between timers behaves as it would in real time.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: FakeTimer[] = [];

  constructor(start: number | Date = Date.UTC(2026, 0, 1)) {
    this.#now = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.#add(fn, Math.max(0, ms), undefined);
  }

  setInterval(fn: () => void, ms: number): Timer {
    const period = Math.max(1, ms);
    return this.#add(fn, period, period);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** When the next timer fires, or undefined when none is pending. */
  get nextDue(): number | undefined {
    return this.#next()?.due;
  }

  /**
   * Advances by `ms`, firing every timer that falls due on the way (in due
   * order), with promise callbacks settled after each one and at the end.
   */
  async tick(ms: number): Promise<void> {
    const end = this.#now + Math.max(0, ms);
    await settle();
    for (;;) {
      const next = this.#next();
      if (next === undefined || next.due > end) break;
      this.#now = Math.max(this.#now, next.due);
      this.#fire(next);
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /**
   * Jumps ahead by `ms` as a machine that was suspended: every timer due by
   * then fires once (an interval once, not once per missed period, and then
   * keeps its period from the new time), in due order.
   */
  async skip(ms: number): Promise<void> {
    await settle();
    this.#now += Math.max(0, ms);
    const due = this.#timers.filter((t) => !t.cancelled && t.due <= this.#now)
      .sort((a, b) => a.due - b.due || a.seq - b.seq);
    for (const timer of due) {
      if (timer.cancelled) continue;
      this.#fire(timer);
      if (timer.period !== undefined) timer.due = this.#now + timer.period;
      await settle();
    }
  }

  /** Advances to the next pending timer and fires it (and any due with it). */
  async next(): Promise<boolean> {
    await settle();
    const next = this.#next();
    if (next === undefined) return false;
    await this.tick(next.due - this.#now);
    return true;
  }

  /** Lets pending promise callbacks run without moving time. */
  async flush(): Promise<void> {
    await settle();
    await settle();
  }

  #add(fn: () => void, ms: number, period: number | undefined): Timer {
    const timer: FakeTimer = {
      seq: this.#seq++,
      due: this.#now + ms,
      period,
      fn,
      cancelled: false,
    };
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        this.#timers = this.#timers.filter((t) => t !== timer);
      },
    };
  }

  #next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers) {
      if (t.cancelled) continue;
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }

  #fire(timer: FakeTimer) {
    if (timer.period === undefined) {
      timer.cancelled = true;
      this.#timers = this.#timers.filter((t) => t !== timer);
    } else {
      timer.due += timer.period;
    }
    timer.fn();
  }
}
