/** CPU figures from /proc (Linux), for the bench, the profiler and the reproductions. */

/** User + system CPU seconds in a `/proc/…/stat` line (after the name, which may hold spaces). */
function statCpu(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU time a process has used so far, seconds (user + system). */
export function cpuSeconds(pid: number | "self" = "self"): number {
  return statCpu(Deno.readTextFileSync(`/proc/${pid}/stat`));
}

/**
 * CPU seconds each thread of `pid` has used so far, by thread id, with its
 * name ("main thread" for the process's own). A thread that ended is gone.
 */
export function threadCpuSeconds(pid: number): Map<string, { name: string; seconds: number }> {
  const threads = new Map<string, { name: string; seconds: number }>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/stat`);
      const name = entry.name === String(pid)
        ? "main thread"
        : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      threads.set(entry.name, { name, seconds: statCpu(stat) });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return threads;
}

/** What {@linkcode machineBusy} measured: busy %, of all CPUs, and busy CPU seconds. */
export interface MachineBusy {
  readonly percent: number;
  readonly seconds: number;
}

/**
 * Starts watching how busy the machine is (every process on it); the function
 * returns, since the start, the busy share of all CPUs (%) and the CPU
 * seconds spent busy (everything but idle and I/O wait; `/proc/stat` counts
 * in USER_HZ, 100 per second on Linux).
 */
export function machineBusy(): () => MachineBusy {
  const read = () => {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0]!.trim().split(/\s+/)
      .slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  };
  const start = read();
  return () => {
    const now = read();
    const busy = now.busy - start.busy;
    return { percent: Math.round(busy / (now.total - start.total) * 100), seconds: busy / 100 };
  };
}
