/**
 * Composition root of `teleport-email`: parses argv, builds the real
 * dependencies (config loading, the identity-file gRPC client with its
 * refresh, the mailer backend, signals), runs the command and maps errors to
 * exit codes. The only module that calls `Deno.exit`.
 */
// First: its body starts the crypto set-up off the main thread before the other modules run.
import "./src/lib/_crypto_warmup_deno.ts";
import { parseCommand, USAGE_HINT, UsageError } from "./src/cli/args.ts";
import { runCommand } from "./src/cli/run.ts";
import type { Config } from "./src/config/types.ts";
import { logger } from "./src/lib/log.ts";
import { releaseMemory } from "./src/lib/_memory_release_deno.ts";
import type { Mailer } from "./src/mail/mailer.ts";
import { runPlugin } from "./src/plugin/run.ts";
import { defaultIdentityFs } from "./src/teleport/identity_store.ts";
import { isOwnerGone, processOwner, realOwnerDeps } from "./src/lib/owner.ts";
import { stdoutPrinter, writeAll } from "./src/cli/output.ts";

/** Exit code for a wrong command line. */
const EXIT_USAGE = 2;
/** Exit code after a second SIGINT (128 + 2, as shells report it). */
const EXIT_INTERRUPTED = 130;
/** On a second SIGINT, how long records of emails already sent may take to be written. */
const EXIT_FLUSH_MS = 1_000;

const print = stdoutPrinter();
const printError = (text: string) => {
  try {
    writeAll(Deno.stderr, text);
  } catch {
    // Nowhere left to say it: the exit code does.
  }
};

/** The configured mailer; only its own library is loaded (memory: see the README's benchmarks). */
async function createMailer(config: Config): Promise<Mailer> {
  const { mailer, delivery } = config;
  if (mailer.kind === "smtp") {
    const { createSmtpMailer } = await import("./src/mail/smtp.ts");
    return createSmtpMailer(mailer, delivery.sender);
  }
  const { createMailgunMailer } = await import("./src/mail/mailgun.ts");
  // The health check goes to the "*" recipients, as the Go plugin's does (test mode).
  return createMailgunMailer(mailer, delivery.sender, {
    healthCheckTo: config.roleToRecipients["*"] ?? [],
  });
}

/** SIGTERM / SIGINT stop gracefully; a second SIGINT exits at once; SIGHUP reloads. */
function installSignals(
  stop: AbortController,
  reloadListeners: (() => void)[],
  exitHooks: (() => Promise<void>)[],
) {
  const log = logger("signals");
  let interrupts = 0;
  Deno.addSignalListener("SIGTERM", () => {
    log.info("SIGTERM received: finishing in-flight emails, then exiting");
    stop.abort(new Error("SIGTERM"));
  });
  Deno.addSignalListener("SIGINT", () => {
    if (++interrupts > 1) {
      // At once, but not before what was already sent is on record (bounded).
      const flushed = Promise.allSettled(exitHooks.map((hook) => hook()));
      const late = new Promise((resolve) => setTimeout(resolve, EXIT_FLUSH_MS));
      void Promise.race([flushed, late]).then(() => Deno.exit(EXIT_INTERRUPTED));
      return;
    }
    log.info("SIGINT received: finishing in-flight emails (again to exit at once)");
    stop.abort(new Error("SIGINT"));
  });
  Deno.addSignalListener("SIGHUP", () => {
    log.info("SIGHUP received: reloading the identity");
    for (const listener of reloadListeners) listener();
  });
}

async function runPluginWithRealDeps(config: Config): Promise<number> {
  const stop = new AbortController();
  const reloadListeners: (() => void)[] = [];
  const exitHooks: (() => Promise<void>)[] = [];
  installSignals(stop, reloadListeners, exitHooks);
  const ownerDeps = realOwnerDeps();
  const owner = processOwner(ownerDeps);
  return await runPlugin(config, {
    env: Deno.env.toObject(),
    identityFs: defaultIdentityFs(),
    createMailer,
    onReload: (listener) => reloadListeners.push(listener),
    onForcedExit: (hook) => exitHooks.push(hook),
    log: logger(),
    owner,
    isOwnerGone: (other) => isOwnerGone(other, owner, ownerDeps),
    releaseMemory,
  }, stop.signal);
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
  return await runCommand(command, { print, printError, runPlugin: runPluginWithRealDeps });
}

Deno.exit(await main(Deno.args));
