/**
 * Writing a command's output to stdout (or an error to stderr): the whole
 * text, however little the pipe takes at a time, and, when the other end is
 * gone (`… | head -1`) or the disk is full (`> /dev/full`), one line instead
 * of a stack trace.
 */
import { EXIT_FAILURE } from "./exit_codes.ts";

const encoder = new TextEncoder();

/** What `writeAll` needs of a file: `Deno.stdout`, `Deno.stderr`. */
export interface SyncWriter {
  writeSync(bytes: Uint8Array): number;
}

/** Writes all of `text` to `to`; throws what the write throws. */
export function writeAll(to: SyncWriter, text: string): void {
  const bytes = encoder.encode(text);
  for (let done = 0; done < bytes.length;) done += to.writeSync(bytes.subarray(done));
}

/**
 * A `print` for the commands: on a broken pipe the reader has what it
 * wanted and the process ends quietly (exit 0); on another failure it says so
 * on stderr and ends with exit 1.
 */
export function stdoutPrinter(
  out: SyncWriter = Deno.stdout,
  err: SyncWriter = Deno.stderr,
  exit: (code: number) => never = Deno.exit,
): (text: string) => void {
  return (text) => {
    try {
      writeAll(out, text);
    } catch (error) {
      if (error instanceof Deno.errors.BrokenPipe) exit(0);
      try {
        writeAll(err, `teleport-email: cannot write the output: ${(error as Error).message}\n`);
      } catch {
        // stderr is gone too: the exit code says it.
      }
      exit(EXIT_FAILURE);
    }
  };
}
