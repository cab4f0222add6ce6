/**
 * Teleport addresses as an operator writes them: "host:port", or
 * "[v6]:port" for an IPv6 host. Shared by the dial plans (which look at the
 * port) and the proxy rules (which look at both).
 */

import { parseHostPort } from "../lib/net_address.ts";

/** Splits "host:port" or "[v6]:port"; throws unless the port is 1–65535. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const parsed = parseHostPort(addr);
  if (parsed === undefined) {
    throw new Error(`Invalid Teleport address ${JSON.stringify(addr)}: expected host:port`);
  }
  return parsed;
}
