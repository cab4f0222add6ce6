/**
 * Bounded reads of the small text files the operator points us at (the
 * config, secret files, CA bundles, identity files). A path that names a FIFO,
 * a device such as `/dev/zero`, a socket or a directory is refused before it
 * is opened (opening a FIFO blocks until a writer comes, reading `/dev/zero`
 * never ends), and no file is read past its limit: the file is opened, checked
 * again on the open handle, and read up to `limit + 1` bytes, so one that grows
 * between the check and the read still cannot make us hold more than the limit.
 *
 * Left open: a regular file swapped for a FIFO between the `stat` and the
 * `open` would still block the open; that takes someone who may write to the
 * file's directory, who could equally replace its contents.
 */

/** Bytes per KiB / MiB, for limits and messages. */
export const KIB = 1024;
export const MIB = 1024 * KIB;

/** Bytes read per call while reading a file. */
const CHUNK_BYTES = 64 * KIB;

/** `64 KiB`, `4 MiB`, `100 bytes`. */
export function formatBytes(bytes: number): string {
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes / KIB} KiB`;
  return `${bytes} bytes`;
}

/** What a path names, in a few words, when it is not a regular file; `undefined` when it is. */
function notRegular(info: Deno.FileInfo): string | undefined {
  if (info.isFile) return undefined;
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  return "not a regular file";
}

/** The error for a path that is not a regular file (`is a FIFO (named pipe), not a regular file`). */
function notRegularError(kind: string): Error {
  if (kind === "a directory") return new Deno.errors.IsADirectory("is a directory");
  return new Error(kind === "not a regular file" ? kind : `is ${kind}, not a regular file`);
}

/** The error for a file over its limit. */
function tooLargeError(limit: number): RangeError {
  return new RangeError(`is larger than the ${formatBytes(limit)} limit`);
}

function checkInfo(info: Deno.FileInfo, limit: number): void {
  const kind = notRegular(info);
  if (kind !== undefined) throw notRegularError(kind);
  if (info.size > limit) throw tooLargeError(limit);
}

/** Strict UTF-8: an invalid byte is `Deno.errors.InvalidData`, as `Deno.readTextFile` throws. */
function decode(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new Deno.errors.InvalidData("stream did not contain valid UTF-8", { cause: error });
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Reads the regular file at `path` as UTF-8 text of at most `limit` bytes.
 * Throws `Deno.errors.*` as `Deno.readTextFileSync` does (not found,
 * permission denied, invalid UTF-8), an `Error` ("is a FIFO (named pipe),
 * not a regular file") for anything but a regular file, and a `RangeError`
 * ("is larger than the 64 KiB limit") for a file over the limit. The
 * messages are phrases meant to follow `Cannot read "<path>": `.
 */
export function readBoundedTextFileSync(path: string, limit: number): string {
  checkInfo(Deno.statSync(path), limit);
  using file = Deno.openSync(path, { read: true });
  // Checked again on what was opened: the path may have changed since the stat.
  checkInfo(file.statSync(), limit);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const buffer = new Uint8Array(Math.min(CHUNK_BYTES, limit + 1 - total));
    const n = file.readSync(buffer);
    if (n === null || n === 0) break;
    chunks.push(buffer.subarray(0, n));
    total += n;
    if (total > limit) throw tooLargeError(limit);
  }
  return decode(concat(chunks, total));
}

/** `readBoundedTextFileSync`, without blocking the event loop. */
export async function readBoundedTextFile(path: string, limit: number): Promise<string> {
  checkInfo(await Deno.stat(path), limit);
  using file = await Deno.open(path, { read: true });
  checkInfo(await file.stat(), limit);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const buffer = new Uint8Array(Math.min(CHUNK_BYTES, limit + 1 - total));
    const n = await file.read(buffer);
    if (n === null || n === 0) break;
    chunks.push(buffer.subarray(0, n));
    total += n;
    if (total > limit) throw tooLargeError(limit);
  }
  return decode(concat(chunks, total));
}
