/**
 * Counts the work under way in the plugin (events being handled, reconciles,
 * reminder checks) and the work waiting on a timer (retries), so that a
 * caller can tell when the plugin has nothing left to do: tests wait for
 * that instead of waiting for a quiet period.
 */
interface IdleWaiter {
  readonly resolve: () => void;
  readonly timersToo: boolean;
}

export class Activity {
  #working = 0;
  #waiting = 0;
  #idle: IdleWaiter[] = [];
  #listeners = new Set<() => void>();

  /** Work under way. */
  get working(): number {
    return this.#working;
  }

  /** Work waiting for a timer (a retry). */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Marks one piece of work started (`"timer"`: waiting for a timer); call
   * the returned function once when it ends (more calls do nothing).
   */
  begin(kind: "work" | "timer" = "work"): () => void {
    if (kind === "work") this.#working++;
    else this.#waiting++;
    this.#changed();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (kind === "work") this.#working--;
      else this.#waiting--;
      this.#wake();
      this.#changed();
    };
  }

  /**
   * Resolves once nothing is under way and, with `timersToo` (the default),
   * nothing waits for a timer either.
   */
  idle(timersToo = true): Promise<void> {
    if (this.#isIdle(timersToo)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push({ resolve, timersToo }));
  }

  /** Calls `listener` after each start and end of work; the returned function unsubscribes. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  #isIdle(timersToo: boolean): boolean {
    return this.#working === 0 && (!timersToo || this.#waiting === 0);
  }

  #wake(): void {
    const still: IdleWaiter[] = [];
    for (const waiter of this.#idle) {
      if (this.#isIdle(waiter.timersToo)) waiter.resolve();
      else still.push(waiter);
    }
    this.#idle = still;
  }
}
