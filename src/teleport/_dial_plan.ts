/**
 * Dial plans: which routes to try for a Teleport address, the order their
 * failures are listed in, and the ALPN protocols each one offers. Pure;
 * connecting a route is `_dial_route.ts`'s job.
 */

import { Buffer } from "node:buffer";
import { splitHostPort } from "./_address.ts";

/** The Auth Service's usual gRPC port: only the direct plan makes sense there. */
const AUTH_PORT = 3025;
/** The Proxy's usual ports with TLS routing (web/multiplexed listener). */
const PROXY_PORTS: readonly number[] = [443, 3080];

/** Teleport's API server name: SNI and the name verified in the server's certificate. */
export const TELEPORT_API_SERVER_NAME = "teleport.cluster.local";

/**
 * How the connection upgrade asks for its tunnel: a WebSocket (sub-protocol
 * `alpn-ping`, what Teleport's clients send since v15.1) or the legacy
 * `Upgrade: alpn` (a raw stream after the 101 answer).
 */
export type ConnUpgradeMode = "websocket" | "legacy";

/** One way to reach the Auth Service at an address. */
export type DialPlan =
  | { readonly kind: "direct"; readonly alpn: readonly string[] }
  | {
    readonly kind: "tls-routing";
    readonly alpn: readonly string[];
    readonly clusterName: string;
  }
  | {
    /** TLS routing inside the Proxy's connection upgrade (behind an L7 load balancer). */
    readonly kind: "conn-upgrade";
    readonly alpn: readonly string[];
    readonly clusterName: string;
    readonly mode: ConnUpgradeMode;
  };

/**
 * Teleport's ALPN protocol that asks a Proxy with TLS routing to forward the
 * TLS stream to the Auth Service of `clusterName`.
 */
export function authAlpnProtocol(clusterName: string): string {
  const hex = Buffer.from(clusterName, "utf8").toString("hex");
  return `teleport-auth@${hex}.${TELEPORT_API_SERVER_NAME}`;
}

/** The direct plan: TLS to the Auth Service itself. */
export const DIRECT_PLAN: DialPlan = Object.freeze({ kind: "direct", alpn: Object.freeze(["h2"]) });

/** The TLS routing plan for `clusterName`: the auth protocol first (the proxy reads only that), then `h2`. */
export function tlsRoutingPlan(clusterName: string): DialPlan {
  return { kind: "tls-routing", alpn: [authAlpnProtocol(clusterName), "h2"], clusterName };
}

/**
 * The plan for TLS routing inside the Proxy's connection upgrade: the same
 * ALPN list as {@linkcode tlsRoutingPlan}, offered in the TLS that runs
 * inside the upgraded stream.
 */
export function connUpgradePlan(clusterName: string, mode: ConnUpgradeMode): DialPlan {
  return { ...tlsRoutingPlan(clusterName), kind: "conn-upgrade", clusterName, mode };
}

/** Human words for a plan, as used in error messages. */
export function describePlan(plan: DialPlan): string {
  switch (plan.kind) {
    case "direct":
      return "direct to Auth (ALPN h2)";
    case "tls-routing":
      return `TLS routing through the proxy (ALPN ${plan.alpn[0]})`;
    case "conn-upgrade":
      return `TLS routing through the proxy's connection upgrade (${
        plan.mode === "websocket" ? "WebSocket" : "legacy Upgrade: alpn"
      }, ALPN ${plan.alpn[0]})`;
  }
}

/**
 * The attempts for `addr` ("host:port"), in the order their failures are
 * listed (they run in parallel):
 * - port 3025 (Auth's port): [direct];
 * - ports 443 and 3080 (a Proxy's): [TLS routing, direct];
 * - any other port: [direct, TLS routing] — an Auth server on a custom port is
 *   more common than a proxy on one.
 * TLS routing needs the cluster name; without it that plan is left out.
 * Throws when `addr` is not "host:port".
 */
export function dialPlans(addr: string, clusterName: string | undefined): DialPlan[] {
  const { port } = splitHostPort(addr);
  const routing = clusterName ? [tlsRoutingPlan(clusterName)] : [];
  if (port === AUTH_PORT) return [DIRECT_PLAN];
  if (PROXY_PORTS.includes(port)) return [...routing, DIRECT_PLAN];
  return [DIRECT_PLAN, ...routing];
}

/**
 * Whether `addr` may sit behind an L7 load balancer, so that the connection
 * upgrade is worth considering: every port but the Auth Service's.
 */
export function mayNeedConnUpgrade(addr: string): boolean {
  return splitHostPort(addr).port !== AUTH_PORT;
}
