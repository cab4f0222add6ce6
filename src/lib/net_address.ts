/**
 * What a host name or URL says about where traffic goes: the loopback
 * interface (plain text there never leaves the machine), every interface
 * (a wildcard bind), and URLs shown without the user info they may carry.
 */

/** `localhost`, 127.0.0.0/8 and ::1 (with or without brackets). */
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/i;
/** The wildcard binds: every IPv4 interface, every IPv6 (and, dual-stack, IPv4) one. */
const WILDCARD_HOST = /^(0\.0\.0\.0|\[?::\]?|\[?0:0:0:0:0:0:0:0\]?|)$/;

/** Whether `host` (a name or an address, IPv6 possibly in brackets) is the loopback interface. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOST.test(host);
}

/** Whether binding to `host` listens on every interface (`0.0.0.0`, `::`, or empty). */
export function isWildcardHost(host: string): boolean {
  return WILDCARD_HOST.test(host);
}

/**
 * `text` (a URL, or what was meant as one) with everything between its
 * scheme and its last `@` replaced by `***`: the user info, however the
 * URL is written (`https://api:key@…`, `https:/api:key@…`, `https:api:key@…`,
 * backslashes, no scheme at all), which URL parsers accept and read as a
 * user name and password. A path's own `@` hides more than needed, never
 * less.
 */
export function withoutUserInfo(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return text;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:[\\/]*/.exec(text)?.[0] ?? "";
  return `${scheme}***${text.slice(at)}`;
}

/**
 * `host:port` (an IPv6 host in brackets, a port from 1 to 65535), or
 * undefined when `text` is not that.
 */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  return m && host && port >= 1 && port <= 65535 ? { host, port } : undefined;
}
