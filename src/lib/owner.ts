/**
 * Who holds a plugin-data claim: `<hostname>/<pid>/<nonce>`, unique per
 * running process. A claim left by an earlier run on this host (the process
 * is gone, or its pid is ours now, as after a container restart) can be
 * taken over at once instead of waiting for it to expire.
 */

export interface OwnerDeps {
  readonly hostname: string;
  readonly pid: number;
  /** Whether a process with this pid exists on this host. */
  pidExists(pid: number): boolean;
}

export function realOwnerDeps(): OwnerDeps {
  return {
    hostname: Deno.hostname(),
    pid: Deno.pid,
    pidExists: (pid) => {
      try {
        Deno.statSync(`/proc/${pid}`);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** The owner name of this process. */
export function processOwner(deps: OwnerDeps, nonce: string = crypto.randomUUID().slice(0, 8)) {
  return `${deps.hostname}/${deps.pid}/${nonce}`;
}

/** True only when `owner` certainly is a dead process of this host; unknown owners are alive. */
export function isOwnerGone(owner: string, self: string, deps: OwnerDeps): boolean {
  if (owner === self) return false;
  const m = /^(.*)\/(\d+)\/[^/]+$/.exec(owner);
  if (!m || m[1] !== deps.hostname) return false;
  const pid = Number(m[2]);
  return pid === deps.pid || !deps.pidExists(pid);
}
