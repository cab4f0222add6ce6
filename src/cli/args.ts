/**
 * Command-line parsing: argv → a typed command, or a `UsageError`. Nothing
 * here runs a command or touches the world, so it is tested as a table.
 */
import { parseArgs } from "node:util";
import { TEMPLATE_KINDS, type TemplateKind } from "../notify/template.ts";

/** The config path `start` uses without `-c`. */
export const DEFAULT_CONFIG_PATH = "/etc/teleport-email.toml";

export type CommandName = "start" | "configure" | "preview" | "version" | "help";

export type Command =
  | { readonly kind: "start"; readonly configPath: string; readonly debug: boolean }
  | { readonly kind: "configure" }
  | {
    readonly kind: "preview";
    readonly configPath: string;
    /** `--kind`: one email kind; all of them without it. */
    readonly emailKind?: TemplateKind;
  }
  | { readonly kind: "version" }
  | { readonly kind: "help"; readonly topic?: CommandName };

/** Wrong command line: printed as one line plus a hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const COMMANDS: readonly CommandName[] = ["start", "configure", "preview", "version", "help"];

function isCommandName(word: string): word is CommandName {
  return (COMMANDS as readonly string[]).includes(word);
}

const SUMMARY: Record<CommandName, string> = {
  start: "Start the plugin: watch Access Requests and send emails",
  configure: "Print an example configuration file (TOML) to stdout",
  preview: "Print sample emails (made-up request data) as the config's [templates] render them",
  version: "Print the version",
  help: "Show help (for a command: help <command>)",
};

/** Usage text for the whole program or one command. */
export function usage(topic?: CommandName): string {
  if (topic === "start") {
    return [
      "Usage: teleport-email start [-c|--config PATH] [-d|--debug]",
      "",
      SUMMARY.start + ".",
      "",
      "Flags:",
      `  -c, --config PATH  Config file (default ${DEFAULT_CONFIG_PATH})`,
      "  -d, --debug        Log at debug severity, whatever [log] severity says",
      "  -h, --help         Show this help",
      "",
    ].join("\n");
  }
  if (topic === "preview") {
    return [
      "Usage: teleport-email preview [-c|--config PATH] [-k|--kind KIND]",
      "",
      SUMMARY.preview + ".",
      "The config is validated as start does; without [templates] the built-in emails are shown.",
      "",
      "Flags:",
      `  -c, --config PATH  Config file (default ${DEFAULT_CONFIG_PATH})`,
      `  -k, --kind KIND    One email kind: ${TEMPLATE_KINDS.join(", ")} (default: all)`,
      "  -h, --help         Show this help",
      "",
    ].join("\n");
  }
  if (topic !== undefined) {
    return `Usage: teleport-email ${topic}${topic === "help" ? " [command]" : ""}\n\n${
      SUMMARY[topic]
    }.\n`;
  }
  const lines = COMMANDS.map((name) => `  ${name.padEnd(10)} ${SUMMARY[name]}`);
  return [
    "Usage: teleport-email <command> [flags]",
    "",
    "Teleport Access Request email notifier.",
    "",
    "Commands:",
    ...lines,
    "",
    "Flags:",
    "  -h, --help  Show help",
    "",
    "Run 'teleport-email help <command>' for the flags of a command.",
    "",
  ].join("\n");
}

/** The hint that follows every usage error. */
export const USAGE_HINT = "Try 'teleport-email --help' for usage.";

/** Parses argv (without the program name). Throws `UsageError`. */
export function parseCommand(argv: readonly string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError("Expected a command (start, configure, version)");
  if (first === "-h" || first === "--help") return { kind: "help" };
  if (first.startsWith("-")) throw new UsageError(`Unknown flag "${first}"`);
  if (!isCommandName(first)) throw new UsageError(`Unknown command "${first}"`);

  if (first === "help") {
    if (rest.length > 1) throw new UsageError(`Unexpected argument "${rest[1]}"`);
    const topic = rest[0];
    if (topic === undefined || topic === "-h" || topic === "--help") return { kind: "help" };
    if (!isCommandName(topic)) throw new UsageError(`Unknown command "${topic}"`);
    return { kind: "help", topic };
  }

  const parsed = parseFlags(
    rest,
    first === "start"
      ? {
        config: { type: "string", short: "c" },
        debug: { type: "boolean", short: "d" },
        // The Go plugin's flag library also takes the negation; the last one given wins.
        "no-debug": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      }
      : first === "preview"
      ? {
        config: { type: "string", short: "c" },
        kind: { type: "string", short: "k" },
        help: { type: "boolean", short: "h" },
      }
      : { help: { type: "boolean", short: "h" } },
  );
  if (parsed.values.help === true) return { kind: "help", topic: first };
  const extra = parsed.positionals[0];
  if (extra !== undefined) throw new UsageError(`Unexpected argument "${extra}"`);

  if (first === "start") {
    const config = parsed.values.config;
    if (config === "") throw new UsageError('Flag "--config" needs a path');
    return {
      kind: "start",
      configPath: typeof config === "string" ? config : DEFAULT_CONFIG_PATH,
      // The last of -d/--debug (also in a group such as -dc) and --no-debug wins.
      debug: lastOption(parsed, ["debug", "no-debug"]) === "debug",
    };
  }
  if (first === "preview") {
    const { config, kind } = parsed.values;
    if (config === "") throw new UsageError('Flag "--config" needs a path');
    const configPath = typeof config === "string" ? config : DEFAULT_CONFIG_PATH;
    if (kind === undefined) return { kind: "preview", configPath };
    const emailKind = TEMPLATE_KINDS.find((name) => name === kind);
    if (emailKind === undefined) {
      throw new UsageError(
        `Unknown kind ${JSON.stringify(kind)} (one of ${TEMPLATE_KINDS.join(", ")})`,
      );
    }
    return { kind: "preview", configPath, emailKind };
  }
  return { kind: first };
}

type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

/** Which of `names` was given last (`parseArgs` with tokens), if any. */
function lastOption(parsed: object, names: readonly string[]): string | undefined {
  const tokens = (parsed as { tokens?: Array<{ kind: string; name?: string }> }).tokens ?? [];
  return tokens.findLast((t) => t.kind === "option" && names.includes(t.name ?? ""))?.name;
}

function parseFlags(args: string[], options: FlagSpec) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true, tokens: true });
  } catch (error) {
    throw new UsageError(describeParseError(error));
  }
}

/** node:util's messages mention positionals and `--`; say what the user typed. */
function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // "Unknown option '--foo'. …", "Option '-c, --config <value>' argument missing",
  // "Option '-d, --debug' does not take an argument"
  const flag = /'(-[^' ,]+)(?:, (--[^' ]+))?/.exec(message);
  const name = flag?.[2] ?? flag?.[1];
  if (name === undefined) return message.split(".")[0] ?? message;
  if (message.startsWith("Unknown option")) return `Unknown flag "${name}"`;
  if (message.includes("argument missing")) return `Flag "${name}" needs a value`;
  if (message.includes("does not take an argument")) return `Flag "${name}" does not take a value`;
  return message.split(".")[0] ?? message;
}
