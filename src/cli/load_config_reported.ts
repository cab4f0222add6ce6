/**
 * Loading the config for a command: on failure the warnings first ("smtp.hots:
 * unknown key" explains "smtp.host: is required" below it), then the error,
 * on stderr before any logging exists. On success the command reports the
 * warnings its own way (`start` logs them, `preview` prints them).
 */
import { ConfigError, loadConfig } from "../config/load.ts";
import type { LoadedConfig } from "../config/types.ts";

/** The loaded config, or undefined once the failure was printed (the command exits 1). */
export async function loadConfigReported(
  path: string,
  printError: (text: string) => void,
  load: (path: string) => LoadedConfig | Promise<LoadedConfig> = loadConfig,
): Promise<LoadedConfig | undefined> {
  let loaded: LoadedConfig;
  try {
    loaded = await load(path);
  } catch (error) {
    const warnings = error instanceof ConfigError ? error.warnings : [];
    for (const warning of warnings) printError(`teleport-email: warning: ${warning}\n`);
    printError(`teleport-email: ${(error as Error).message}\n`);
    return undefined;
  }
  return loaded;
}
