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
   * Queues `task` behind the other tasks of `key`. Resolves once the task is
   * accepted (not when it is done). A task's rejection is passed to `onError`.
   */
  async push(
    key: string,
    task: () => Promise<void>,
    onError: (error: unknown) => void,
  ): Promise<void> {
    while (this.#pending >= this.#limit) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
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
  }

  /** Resolves when no task is queued or running. */
  onIdle(): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}
