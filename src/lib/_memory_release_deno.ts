/**
 * The real memory release of `memory_release.ts`: a full garbage collection
 * (V8 frees what the work left and gives back the pages of its heap it no
 * longer needs), then glibc's `malloc_trim(0)`, which returns the free pages
 * inside malloc's heap as well as at its top (`free` alone only trims the
 * top, and a burst leaves its freed buffers below live ones).
 *
 * V8's collector is reached as `gc` by turning on `--expose-gc` at run time
 * and taking the function from a new context (about 1 MiB, paid at the first
 * release), so `deno run` and the compiled binary behave the same without a
 * V8 flag. `malloc_trim` is called through Deno's FFI on `libc.so.6`; where
 * there is none (musl, or no FFI permission) only the collection is done.
 */
import v8 from "node:v8";
import vm from "node:vm";
import type { Released } from "./memory_release.ts";

let collect: (() => void) | undefined;
let trim: ((pad: number) => number) | null | undefined;

function fullCollector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === "function") return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

function mallocTrim(): ((pad: number) => number) | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const lib = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    return (pad) => lib.symbols.malloc_trim(BigInt(pad));
  } catch {
    // Not glibc, or no FFI permission: the collection alone still helps.
    return null;
  }
}

/** Collects V8's garbage and trims glibc's heap. */
export function releaseMemory(): Released {
  const t0 = performance.now();
  const rssBefore = Deno.memoryUsage().rss;
  collect ??= fullCollector();
  collect();
  trim ??= mallocTrim();
  const trimmed = trim !== null && trim(0) === 1;
  const rssAfter = Deno.memoryUsage().rss;
  return { rssBefore, rssAfter, trimmed, ms: performance.now() - t0 };
}
