/**
 * Composition root of `teleport-email`: parses argv, builds the real
 * dependencies (config loading, the identity-file gRPC client with its
 * refresh, the mailer backend), runs the command and maps errors to exit codes.
 */
import { parseCommand, USAGE_HINT, UsageError } from "./src/cli/args.ts";
import { runCommand } from "./src/cli/run.ts";
import type { Config } from "./src/config/types.ts";
import { logger } from "./src/lib/log.ts";

/** Exit code for a wrong command line. */
const EXIT_USAGE = 2;

const encoder = new TextEncoder();
const print = (text: string) => Deno.stdout.writeSync(encoder.encode(text));
const printError = (text: string) => Deno.stderr.writeSync(encoder.encode(text));

// deno-lint-ignore require-await
async function runPlugin(_config: Config): Promise<number> {
  logger().error(
    "Nothing else is wired yet: the Teleport client and the mailers are not part of this build",
  );
  return 1;
}

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printError(`teleport-email: ${error.message}\n${USAGE_HINT}\n`);
    return EXIT_USAGE;
  }
  return await runCommand(command, { print, printError, runPlugin });
}

Deno.exit(await main(Deno.args));
