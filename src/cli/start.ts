/**
 * `teleport-email start`: load and validate the config, set up logging, then
 * hand over to the plugin. Config errors go to stderr (exit 1) before any
 * logging exists; later failures are logged and also exit 1, with their message
 * on stderr as well when the log goes to a file or stdout.
 */
import type { Config } from "../config/types.ts";
import { closeLogging, logger, setupLogging } from "../lib/log.ts";
import { VERSION } from "../lib/version.ts";
import { oneLine } from "../notify/message.ts";
import { EXIT_FAILURE } from "./exit_codes.ts";
import { loadConfigReported } from "./load_config_reported.ts";

export interface StartDeps {
  /** Writes text to stderr (used before logging is set up). */
  printError(text: string): void;
  /**
   * Runs the plugin with a validated config until it is told to stop.
   * Resolves with the exit code.
   */
  runPlugin(config: Config): Promise<number>;
}

export async function startCommand(
  command: { configPath: string; debug: boolean },
  deps: StartDeps,
): Promise<number> {
  const loaded = await loadConfigReported(command.configPath, deps.printError);
  if (loaded === undefined) return EXIT_FAILURE;
  const { config, warnings } = loaded;
  try {
    await setupLogging(config.log, { debug: command.debug });
  } catch (error) {
    deps.printError(`teleport-email: ${(error as Error).message}\n`);
    return EXIT_FAILURE;
  }
  const log = logger();
  try {
    log.info("Starting Teleport Access Email Plugin {version}", { version: VERSION });
    for (const warning of warnings) log.warn("{warning}", { warning });
    return await deps.runPlugin(config);
  } catch (error) {
    log.error("Plugin failed: {error}", { error });
    // A fatal error is said on stderr too (the journal, a terminal) when the log goes elsewhere.
    if (config.log.output !== "stderr") {
      const message = error instanceof Error ? error.message : String(error);
      // One line, as the text log makes it: a server's words must not forge lines or escapes.
      deps.printError(`teleport-email: Plugin failed: ${oneLine(message)}\n`);
    }
    return EXIT_FAILURE;
  } finally {
    await closeLogging();
  }
}
