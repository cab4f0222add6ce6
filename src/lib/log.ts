/**
 * Logging: the one place LogTape is configured. Modules take a child logger
 * from `logger(...)` and add context with `.with({ requestId })`. Text lines
 * are for people (`time LEVEL message key=value …`), `json` lines for machines.
 * Values are escaped so a CR/LF in a request reason cannot forge a log line.
 */
import {
  configure,
  getJsonLinesFormatter,
  getLogger,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import type { LogConfig, LogSeverity } from "../config/types.ts";

/** Root category of every logger of the plugin. */
export const ROOT_CATEGORY = "teleport-email";

/** Mode of a log file the plugin creates: owner read/write only. */
const LOG_FILE_MODE = 0o600;

/** A synchronous byte writer: stderr, stdout or an open file. */
export interface LogWriter {
  writeSync(bytes: Uint8Array): number;
}

export interface LoggingDeps {
  stderr: LogWriter;
  stdout: LogWriter;
  openAppend(path: string): LogWriter & { close(): void };
}

export function defaultLoggingDeps(): LoggingDeps {
  return {
    stderr: Deno.stderr,
    stdout: Deno.stdout,
    openAppend: (path) =>
      Deno.openSync(path, { append: true, create: true, write: true, mode: LOG_FILE_MODE }),
  };
}

/** A logger under the plugin's root category. */
export function logger(...category: string[]): Logger {
  return getLogger([ROOT_CATEGORY, ...category]);
}

const LEVEL_LABEL: Record<string, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

/** Renders a value for a text line: strings as-is unless they need quoting, so no control character survives. */
function renderValue(value: unknown): string {
  if (value instanceof Error) return quoteIfNeeded(value.message);
  if (typeof value === "string") return quoteIfNeeded(value);
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return "undefined";
  try {
    return quoteIfNeeded(JSON.stringify(value) ?? String(value));
  } catch {
    return quoteIfNeeded(String(value));
  }
}

function quoteIfNeeded(text: string): string {
  // deno-lint-ignore no-control-regex
  return /[\x00-\x1f\x7f]/.test(text) ? JSON.stringify(text) : text;
}

function renderProperty(value: unknown): string {
  const text = renderValue(value);
  return /\s/.test(text) && !text.startsWith('"') ? JSON.stringify(text) : text;
}

/** `2026-11-23T04:40:00.123Z INFO  Plugin is ready requestId=abc` */
export function formatTextLine(record: LogRecord): string {
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    message += i % 2 === 0 ? String(part) : renderValue(part);
  }
  // deno-lint-ignore no-control-regex
  message = message.replace(/[\r\n\x00-\x08\x0b-\x1f\x7f]/g, " ");
  const level = (LEVEL_LABEL[record.level] ?? record.level).padEnd(5);
  // Values already shown in the message are not repeated as key=value.
  const shown = typeof record.rawMessage === "string"
    ? new Set([...record.rawMessage.matchAll(/\{([^{}\s]+)\}/g)].map((m) => m[1]))
    : new Set<string>();
  const props = Object.entries(record.properties)
    .filter(([key]) => !shown.has(key))
    .map(([key, value]) => ` ${key}=${renderProperty(value)}`)
    .join("");
  return `${new Date(record.timestamp).toISOString()} ${level} ${message}${props}\n`;
}

const jsonFormatter = getJsonLinesFormatter({ categorySeparator: ".", message: "rendered" });

let openFile: (LogWriter & { close(): void }) | undefined;

/**
 * Configures LogTape from `[log]`. `debug` (the `--debug` flag) forces the
 * debug severity. Throws with the path when a log file cannot be opened.
 */
export async function setupLogging(
  cfg: LogConfig,
  options: { debug?: boolean } = {},
  deps: LoggingDeps = defaultLoggingDeps(),
): Promise<void> {
  let writer: LogWriter;
  if (cfg.output === "stderr") writer = deps.stderr;
  else if (cfg.output === "stdout") writer = deps.stdout;
  else {
    try {
      openFile = deps.openAppend(cfg.output);
    } catch (error) {
      throw new Error(
        `Cannot open log file "${cfg.output}" (log.output): ${(error as Error).message}`,
        { cause: error },
      );
    }
    writer = openFile;
  }
  const encoder = new TextEncoder();
  const format = cfg.format === "json" ? jsonFormatter : formatTextLine;
  const sink: Sink = (record) => {
    const bytes = encoder.encode(format(record));
    let written = 0;
    while (written < bytes.length) written += writer.writeSync(bytes.subarray(written));
  };
  const severity: LogSeverity = options.debug ? "debug" : cfg.severity;
  await configure({
    reset: true,
    sinks: { main: sink },
    loggers: [
      { category: [ROOT_CATEGORY], sinks: ["main"], lowestLevel: severity },
      { category: ["logtape", "meta"], sinks: ["main"], lowestLevel: "warning" },
    ],
  });
}

/** Flushes and closes what `setupLogging` opened. */
export async function closeLogging(): Promise<void> {
  await reset();
  openFile?.close();
  openFile = undefined;
}
