/**
 * Log lines for tests that hand a logger to the code under test: LogTape
 * configured for the test module to keep every line under the `test`
 * category, formatted as the product formats it, and loggers whose own
 * lines come back apart from the others'. Test-only.
 */
import { configureSync, getLogger, type Logger, type LogRecord, resetSync } from "@logtape/logtape";
import { formatTextLine } from "../src/lib/log.ts";

export interface TestLogger {
  readonly log: Logger;
  /** The lines logged through `log` (or its children) so far. */
  lines(): string[];
}

/**
 * Configures LogTape for this test module (replacing any configuration) and
 * returns the factory of test loggers: each gets a category and tag of its
 * own, `name` in it when given.
 */
export function captureTestLogs(): (name?: string) => TestLogger {
  const logLines: string[] = [];
  resetSync();
  configureSync({
    reset: true,
    sinks: { memory: (record: LogRecord) => void logLines.push(formatTextLine(record)) },
    loggers: [
      { category: ["test"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  return (name) => {
    const id = crypto.randomUUID().slice(0, 8);
    const category = ["test", name === undefined ? id : `${name}-${id}`];
    const tag = category.join("·");
    return {
      log: getLogger(category).with({ t: tag }),
      lines: () => logLines.filter((l) => l.includes(`t=${tag}`)),
    };
  };
}
