/**
 * Waiting for a test fake's list (messages received, requests answered) to
 * reach a length: the fake calls `arrived()` after each addition, tests
 * call `waitFor(n)`. Test-only.
 */

export interface Arrivals {
  /** Wakes every waiter to look at the list again; call after adding to it. */
  arrived(): void;
  /**
   * Resolves once the list holds `n` items; rejects after `timeoutMs` with
   * "Timed out waiting for <n> <noun>: got <length>".
   */
  waitFor(n: number, timeoutMs: number): Promise<void>;
}

/** Waits on `list`, whose items are called `noun` (plural) in the timeout message. */
export function arrivals(list: readonly unknown[], noun: string): Arrivals {
  const waiters: Array<() => void> = [];
  return {
    arrived() {
      for (const wake of waiters.splice(0)) wake();
    },
    async waitFor(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (list.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`Timed out waiting for ${n} ${noun}: got ${list.length}`);
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          timer = setTimeout(resolve, left);
        });
        clearTimeout(timer);
      }
    },
  };
}
