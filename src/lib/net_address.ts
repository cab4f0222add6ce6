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

/** `text` with anything between `//` and `@` of its authority replaced by `***`. */
export function withoutUserInfo(text: string): string {
  return text.replace(/^([^:/?#]*:\/\/)[^/?#]*@/, "$1***@");
}
