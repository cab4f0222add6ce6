/**
 * Runs tasks so that tasks with the same key run one after another in the
 * order they were pushed, tasks with different keys run in parallel, and at
 * most `limit` tasks are queued or running at once (`push` waits for room:
 * that is the back-pressure on the watch stream).
 */
/** A unit of work for one key (a request id), run with a signal that carries its deadline. */
export interface KeyedTask {
  readonly key: string;
  run(signal: AbortSignal): Promise<void>;
}

export class KeyedQueue {
  readonly #limit: number;
  readonly #tails = new Map<string, Promise<void>>();
  #pending = 0;
  #waiters: (() => void)[] = [];
  #idle: (() => void)[] = [];

  constructor(limit: number) {
    if (!(limit >= 1)) throw new RangeError(`Queue limit must be at least 1, got ${limit}`);
    this.#limit = limit;
  }

  /** Tasks queued or running. */
  get size(): number {
    return this.#pending;
  }

  /**
   * Queues `task` behind the other tasks of `key`. Resolves with true once the
   * task is accepted (not when it is done), or with false, the task dropped,
   * when `signal` aborts first (also while waiting for room). A task's
   * rejection is passed to `onError`.
   */
  async push(
    key: string,
    task: () => Promise<void>,
    onError: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<boolean> {
    while (this.#pending >= this.#limit && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          const at = this.#waiters.indexOf(wake);
          if (at >= 0) this.#waiters.splice(at, 1);
          resolve();
        };
        this.#waiters.push(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
    if (signal?.aborted) {
      // Woken for room it does not take: the next waiter may.
      if (this.#pending < this.#limit) this.#waiters.shift()?.();
      return false;
    }
    this.#pending++;
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const run = previous.then(task).catch(onError).finally(() => {
      if (this.#tails.get(key) === run) this.#tails.delete(key);
      this.#pending--;
      this.#waiters.shift()?.();
      if (this.#pending === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
    });
    this.#tails.set(key, run);
    return true;
  }

  /** Resolves when no task is queued or running. */
  onIdle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}
