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

/** CPU seconds the main thread of `pid` (the thread whose id is the pid) has used so far. */
export function mainThreadCpu(pid: number): number {
  return statCpu(Deno.readTextFileSync(`/proc/${pid}/task/${pid}/stat`));
}

/**
 * Seconds the main thread of `pid` has spent waiting for a CPU so far: runnable
 * but not running, because other threads had the CPUs (`/proc/…/schedstat`,
 * its second field); `undefined` where the kernel keeps no schedstats.
 */
export function mainThreadRunWait(pid: number): number | undefined {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/schedstat`).trim().split(" ");
    const waited = Number(fields[1]);
    return Number.isFinite(waited) ? waited / 1e9 : undefined;
  } catch {
    return undefined;
  }
}

/** The CPUs `/proc/stat` counts (its `cpuN` lines), which `machineBusy` adds up. */
export function machineCpus(): number {
  return Deno.readTextFileSync("/proc/stat").split("\n").filter((l) => /^cpu\d+ /.test(l)).length;
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
 * seconds spent busy: user, nice, system, irq and softirq time (`/proc/stat`
 * counts in USER_HZ, 100 per second on Linux). Idle, I/O wait and steal
 * (time the hypervisor gave to others) are not busy; guest time is already
 * inside user and nice, so it is not added again.
 */
export function machineBusy(): () => MachineBusy {
  const read = () => {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = Deno.readTextFileSync(
      "/proc/stat",
    ).split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map((f) => Number(f) || 0);
    const busy = user! + nice! + system! + irq! + softirq!;
    return { busy, total: busy + idle! + iowait! + steal! };
  };
  const start = read();
  return () => {
    const now = read();
    const busy = now.busy - start.busy;
    return { percent: Math.round(busy / (now.total - start.total) * 100), seconds: busy / 100 };
  };
}
