/**
 * Logging: the one place LogTape is configured. Modules take a child logger
 * from `logger(...)` and add context with `.with({ requestId })`. Text lines
 * are for people (`time LEVEL message key=value …`), `json` lines for machines.
 * Values are escaped so a CR/LF in a request reason cannot forge a log line.
 *
 * The option types live here, not in `src/config/`: config depends on lib,
 * never the reverse.
 */
import {
  configure,
  getLogger,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { exposedFileWarning } from "./file_mode.ts";

/** Log severities (LogTape's level names), lowest first. */
export type LogSeverity = "debug" | "info" | "warning" | "error";

/** Where, from which severity and in which format the plugin logs. */
export interface LogOptions {
  /** `stderr`, `stdout` or a file path. */
  readonly output: string;
  readonly severity: LogSeverity;
  /** `text` lines for people, `json` lines (one object per line) for machines. */
  readonly format: "text" | "json";
}

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
  /** What is at `path` before it is opened; `undefined` when nothing. Default: `Deno.statSync`. */
  fileInfo?(path: string): LogPathInfo | undefined;
}

export interface LogPathInfo {
  readonly isFile: boolean;
  readonly mode: number | null;
  /** A named pipe or a socket: what opening it for writing would wait on, or fail at. */
  readonly special?: "FIFO (named pipe)" | "socket";
}

function hasRealPath(path: string): boolean {
  try {
    Deno.realPathSync(path);
    return true;
  } catch {
    return false; // `pipe:[…]`, `socket:[…]`: no path
  }
}

function defaultFileInfo(path: string): LogPathInfo | undefined {
  try {
    const info = Deno.statSync(path);
    const special = info.isFifo ? "FIFO (named pipe)" : info.isSocket ? "socket" : undefined;
    // Only one with a name in the file system: /dev/stdout of a process whose output is a pipe
    // (a container, a supervisor, `| tee`) leads to that pipe, which has none, and is fine.
    const named = special !== undefined && hasRealPath(path);
    return { isFile: info.isFile, mode: info.mode, ...(named ? { special } : {}) };
  } catch {
    return undefined;
  }
}

function defaultLoggingDeps(): LoggingDeps {
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

/** An error as a JSON value: what it says, not its stack (`{}` is what JSON.stringify makes of it). */
function errorFields(error: Error): Record<string, unknown> {
  const code: unknown = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === "string" || typeof code === "number" ? { code } : {}),
  };
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  return value instanceof Error ? errorFields(value) : value;
}

/** A value as plain text: strings as they are, an error as its message, the rest as JSON. */
function plainValue(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === "string") return value;
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return String(value);
  try {
    return JSON.stringify(value, jsonReplacer) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The message with its placeholders filled in by `render`. */
function renderMessage(record: LogRecord, render: (value: unknown) => string): string {
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    message += i % 2 === 0 ? String(part) : render(part);
  }
  return message;
}

/**
 * Renders a value inside a text line's message: as plain text, quoted when
 * it holds a control character (none survives) or a word followed by `=`
 * (so that it cannot pass for a `key=value` field of the line; `a = b`
 * stays as it is).
 */
function renderValue(value: unknown): string {
  const text = plainValue(value);
  // deno-lint-ignore no-control-regex
  return /[\x00-\x1f\x7f]|(?:^|\s)[^\s="]+=/.test(text) ? JSON.stringify(text) : text;
}

/** A `key=value` field's value: quoted also for a space or a quote (a value ends at a space). */
function renderProperty(value: unknown): string {
  const text = plainValue(value);
  // deno-lint-ignore no-control-regex
  return /[\s"=\x00-\x1f\x7f]/.test(text) ? JSON.stringify(text) : text;
}

/** `2026-11-23T04:40:00.123Z INFO  Plugin is ready requestId=abc` */
export function formatTextLine(record: LogRecord): string {
  // deno-lint-ignore no-control-regex
  const message = renderMessage(record, renderValue).replace(/[\r\n\x00-\x08\x0b-\x1f\x7f]/g, " ");
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

/**
 * `{"@timestamp":"…","level":"INFO","message":"Email sent to a@b.c","logger":"teleport-email.notify",
 * "properties":{"to":"a@b.c","requestId":"r-1"}}`: the message rendered as plain text, the
 * properties as JSON values, an error as its name, message and code. JSON escaping keeps a
 * CR/LF inside the line.
 */
function formatJsonLine(record: LogRecord): string {
  const line = (properties: Record<string, unknown>) =>
    JSON.stringify({
      "@timestamp": new Date(record.timestamp).toISOString(),
      level: LEVEL_LABEL[record.level] ?? record.level.toUpperCase(),
      message: renderMessage(record, plainValue),
      logger: record.category.join("."),
      properties,
    }, jsonReplacer) + "\n";
  try {
    return line(record.properties);
  } catch {
    // A property JSON cannot hold (a cycle) becomes plain text instead of losing the line.
    const fallback = Object.entries(record.properties).map(([key, value]) => {
      try {
        JSON.stringify(value, jsonReplacer);
        return [key, value];
      } catch {
        return [key, plainValue(value)];
      }
    });
    return line(Object.fromEntries(fallback));
  }
}

let openFile: (LogWriter & { close(): void }) | undefined;

/**
 * Configures LogTape from `[log]`. `debug` (the `--debug` flag) forces the
 * debug severity. Throws with the path when a log file cannot be opened.
 */
export async function setupLogging(
  cfg: LogOptions,
  options: { debug?: boolean } = {},
  deps: LoggingDeps = defaultLoggingDeps(),
): Promise<void> {
  let writer: LogWriter;
  const warnings: string[] = [];
  if (cfg.output === "stderr") writer = deps.stderr;
  else if (cfg.output === "stdout") writer = deps.stdout;
  else {
    // A file we create is owner-only; one that was there keeps its mode, which may not be.
    const before = (deps.fileInfo ?? defaultFileInfo)(cfg.output);
    if (before?.special) {
      // Opening a FIFO for writing waits for a reader: the plugin would hang before its first line.
      throw new Error(
        `Cannot use log file "${cfg.output}" (log.output): it is a ${before.special}, not a ` +
          `regular file; log to a file, "stderr" or "stdout"`,
      );
    }
    const exposed = before?.isFile ? exposedFileWarning(cfg.output, before.mode) : undefined;
    if (exposed !== undefined) warnings.push(`Log file "${cfg.output}" (log.output) ${exposed}`);
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
  const format = cfg.format === "json" ? formatJsonLine : formatTextLine;
  // A write that fails (a full disk, /dev/full) would lose every line without a word:
  // say so on stderr, once, unless stderr is what failed.
  let reported = false;
  const sink: Sink = (record) => {
    const bytes = encoder.encode(format(record));
    try {
      let written = 0;
      while (written < bytes.length) written += writer.writeSync(bytes.subarray(written));
    } catch (error) {
      if (reported || writer === deps.stderr) return;
      reported = true;
      try {
        deps.stderr.writeSync(encoder.encode(
          `teleport-email: cannot write to log output ${
            JSON.stringify(cfg.output)
          } (log.output): ` +
            `${
              (error as Error)?.message ?? error
            }; log lines are lost until it accepts writes again\n`,
        ));
      } catch {
        // stderr is gone too: nothing left to tell.
      }
    }
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
  for (const warning of warnings) logger().warn("{warning}", { warning });
}

/** Flushes and closes what `setupLogging` opened. */
export async function closeLogging(): Promise<void> {
  await reset();
  openFile?.close();
  openFile = undefined;
}
