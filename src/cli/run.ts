/**
 * Runs a parsed command and returns its exit code. Only `main.ts` calls
 * `Deno.exit`; everything that touches the world comes in through `deps`.
 */
import { type Command, usage } from "./args.ts";
import { CONFIG_TEMPLATE } from "../config/template.ts";
import { versionLine } from "../lib/version.ts";
import { startCommand, type StartDeps } from "./start.ts";
import { previewCommand } from "./preview.ts";

export interface RunDeps extends StartDeps {
  /** Writes text to stdout. */
  print(text: string): void;
}

export async function runCommand(command: Command, deps: RunDeps): Promise<number> {
  switch (command.kind) {
    case "help":
      deps.print(usage(command.topic));
      return 0;
    case "version":
      deps.print(versionLine() + "\n");
      return 0;
    case "configure":
      deps.print(CONFIG_TEMPLATE);
      return 0;
    case "start":
      return await startCommand(command, deps);
    case "preview":
      return previewCommand(command, deps);
  }
}
