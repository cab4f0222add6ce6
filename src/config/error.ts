/**
 * The one error the config module throws: every problem found in the config
 * file, each naming its dotted TOML key, reported together.
 */

/** Options for `ConfigError`: the heading of the message and the usual `cause`. */
export interface ConfigErrorOptions extends ErrorOptions {
  /** First line of the message; default `Invalid configuration`. */
  readonly heading?: string;
  /** The whole message, replacing the heading and the list of problems. */
  readonly message?: string;
  /** Warnings found along with the problems (`smtp.hots: unknown key, ignored …`). */
  readonly warnings?: readonly string[];
}

/**
 * A config file that cannot be read, parsed or accepted. `problems` lists
 * each issue on its own (`smtp.port: must be an integer from 1 to 65535,
 * got "70000"`); the message holds them all. `warnings` are what validation
 * would have logged had the config been accepted: the caller shows them too,
 * since an unknown key is often why a required one is missing.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: readonly string[];
  readonly warnings: readonly string[];

  constructor(problems: readonly string[], options: ConfigErrorOptions = {}) {
    const { heading = "Invalid configuration", message, warnings = [], ...errorOptions } = options;
    super(message ?? formatProblems(heading, problems), errorOptions);
    this.problems = [...problems];
    this.warnings = [...warnings];
  }
}

function formatProblems(heading: string, problems: readonly string[]): string {
  if (problems.length === 1) return `${heading}: ${problems[0]}`;
  const count = `${problems.length} problems`;
  return `${heading} (${count}):\n${problems.map((problem) => `  - ${problem}`).join("\n")}`;
}

/** Why a file could not be read, in a few words (`not found`, `permission denied`). */
export function describeReadError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "not found";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  if (error instanceof Deno.errors.InvalidData) return "not valid UTF-8 text";
  return error instanceof Error ? error.message : String(error);
}
