/**
 * Reads the config file, parses it as TOML and hands it to `validateConfig`.
 * Every failure, from a missing file to a bad value, is a `ConfigError`.
 *
 * Relative paths inside the file (`teleport.identity`, `smtp.password_file`,
 * `smtp.ca_file`...) are used as written, that is relative to the process's
 * current directory, not to the config file's directory, as in the Go plugin.
 */
import { parse, TomlError } from "smol-toml";
import { MIB, readBoundedTextFileSync } from "../lib/read_file.ts";
import { loadTemplateEngine } from "../notify/template.ts";
import { ConfigError, describeReadError } from "./error.ts";
import type { LoadedConfig } from "./types.ts";
import { type ConfigDeps, validateConfig } from "./validate.ts";

export { ConfigError } from "./error.ts";
export type { ConfigDeps } from "./validate.ts";

/** The command that writes an example config file, for the hint when none is found. */
const CONFIGURE_COMMAND = "teleport-email configure";

/** Largest config file: the template is 5 KiB, a config with hundreds of roles well under 1 MiB. */
const CONFIG_FILE_LIMIT = MIB;

/**
 * Reads files from the local file system: regular files only (a FIFO would
 * block, `/dev/zero` would never end) and at most `limit` bytes each.
 */
const DEFAULT_CONFIG_DEPS: ConfigDeps = {
  readTextFile: (path, limit) => readBoundedTextFileSync(path, limit),
  fileMode: (path) => Deno.statSync(path).mode,
};

/**
 * Loads and validates the config file at `path`, reading the files it names
 * (secrets, CA) through `deps.readTextFile`. Rejects with `ConfigError`.
 * Asynchronous only to load the template engine when the file has
 * `[templates]` (the built-in messages do without it); the files are read
 * synchronously.
 */
export async function loadConfig(
  path: string,
  deps: ConfigDeps = DEFAULT_CONFIG_DEPS,
): Promise<LoadedConfig> {
  const raw = readConfigFile(path, deps);
  if (typeof raw === "object" && raw !== null && "templates" in raw) await loadTemplateEngine();
  return validated(raw, path, deps);
}

/**
 * {@linkcode loadConfig} for callers that cannot wait (tests): a file with
 * `[templates]` needs `loadTemplateEngine()` to have been awaited before.
 */
export function loadConfigSync(path: string, deps: ConfigDeps = DEFAULT_CONFIG_DEPS): LoadedConfig {
  return validated(readConfigFile(path, deps), path, deps);
}

/** The file at `path` read and parsed as TOML; throws `ConfigError`. */
function readConfigFile(path: string, deps: ConfigDeps): unknown {
  const quoted = JSON.stringify(path);
  let text: string;
  try {
    text = deps.readTextFile(path, CONFIG_FILE_LIMIT);
  } catch (error) {
    let problem = `Cannot read config file ${quoted}: ${describeReadError(error)}`;
    if (error instanceof Deno.errors.NotFound) {
      problem += `; create one with: ${CONFIGURE_COMMAND} > ${shellWord(path)}`;
    }
    throw new ConfigError([problem], { message: problem, cause: error });
  }

  try {
    return parse(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // Only the first line of smol-toml's message: the rest quotes the
    // surrounding lines of the file, which may hold a secret.
    const reason = error.message.split("\n", 1)[0]?.replace(/^Invalid TOML document: /, "");
    throw new ConfigError(
      [`TOML syntax error at line ${error.line}, column ${error.column}: ${reason}`],
      { heading: `Invalid config file ${quoted}` },
    );
  }
}

/** `validateConfig`, its errors headed with the file's name. */
function validated(raw: unknown, path: string, deps: ConfigDeps): LoadedConfig {
  try {
    return validateConfig(raw, deps);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(error.problems, {
      heading: `Invalid config file ${JSON.stringify(path)}`,
      warnings: error.warnings,
    });
  }
}

/** `path` as one word for a POSIX shell: as it is when safe, else in single quotes. */
function shellWord(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}
