/** CPU figures from /proc (Linux), for the bench, the profiler and the reproductions. */

/** CPU time a process has used so far, seconds (user + system). */
export function cpuSeconds(pid: number | "self" = "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Starts watching how busy the machine is; the function returns the busy % (all CPUs) since. */
export function machineBusy(): () => number {
  const read = () => {
    const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0]!.trim().split(/\s+/)
      .slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  };
  const start = read();
  return () => {
    const now = read();
    return Math.round((now.busy - start.busy) / (now.total - start.total) * 100);
  };
}
