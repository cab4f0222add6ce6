/**
 * A counting semaphore: at most `size` holders at once, the others wait in
 * the order they came; a waiter whose signal aborts leaves the line and
 * rejects with the signal's reason.
 */
export class Slots {
  #free: number;
  readonly #size: number;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    if (!(size >= 1)) throw new RangeError(`Slots must be at least 1, got ${size}`);
    this.#free = size;
    this.#size = size;
  }

  /** Takes a slot if one is free at once (`release()` gives it back); false otherwise. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }

  /** Whether nobody holds a slot. */
  get idle(): boolean {
    return this.#free === this.#size;
  }

  /** Resolves once a slot is held; `release()` gives it back. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const index = this.#waiting.indexOf(grant);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(signal!.reason);
      };
      this.#waiting.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Gives a slot back: to the first waiter, if any. */
  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free++;
  }

  /** Holders waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }
}
