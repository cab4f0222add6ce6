/** A time limit and an ordered teardown for tests that start servers and clients. */

/** Registers a teardown step; steps run in reverse order of registration. */
export type Defer = (step: () => unknown) => void;

/**
 * Runs `fn` with a teardown list and a time limit. The teardown steps run in
 * reverse order whether `fn` succeeds, fails or runs out of time.
 */
export async function withTeardown(
  timeoutMs: number,
  fn: (defer: Defer) => Promise<void>,
): Promise<void> {
  const teardown: (() => unknown)[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      fn((step) => teardown.push(step)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Test exceeded ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    for (const step of teardown.reverse()) await step();
  }
}
