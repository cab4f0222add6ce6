/**
 * Teleport addresses as an operator writes them: "host:port", or
 * "[v6]:port" for an IPv6 host. Shared by the dial plans (which look at the
 * port) and the proxy rules (which look at both).
 */

/** Splits "host:port" or "[v6]:port"; throws unless the port is 1–65535. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || !host || !(port >= 1 && port <= 65535)) {
    throw new Error(`Invalid Teleport address ${JSON.stringify(addr)}: expected host:port`);
  }
  return { host, port };
}
