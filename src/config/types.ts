/**
 * The validated configuration: what `loadConfig` returns and every other
 * module receives. Raw TOML never leaves `src/config/`. Option types that a
 * `src/lib/` module owns (logging) are reused from there.
 */
import type { LogOptions } from "../lib/log.ts";
import type { Secret } from "../lib/secret.ts";
import type { TemplateSources } from "../notify/template.ts";

export type { LogSeverity } from "../lib/log.ts";

/** Values of `smtp.starttls_policy` (unset or empty means `mandatory`). */
export const STARTTLS_POLICIES = ["mandatory", "opportunistic", "disabled"] as const;

/** SMTP STARTTLS policy (`smtp.starttls_policy`). */
export type StarttlsPolicy = typeof STARTTLS_POLICIES[number];

export interface TeleportConfig {
  /** `teleport.addr` (or the deprecated `teleport.auth_server`); default `localhost:3025`. */
  readonly addr: string;
  /** How the client authenticates: an identity file, or the key/cert/CA triple. */
  readonly credentials:
    | { readonly kind: "identity"; readonly identityFile: string }
    | {
      readonly kind: "files";
      readonly clientKey: string;
      readonly clientCrt: string;
      readonly rootCas: string;
    };
  /** `teleport.refresh_identity`; only allowed with an identity file. */
  readonly refreshIdentity: boolean;
  /** `teleport.refresh_identity_interval` in milliseconds; default 60 000. */
  readonly refreshIdentityIntervalMs: number;
  /**
   * `teleport.proxy_ca_file` (PEM text, already read): CAs trusted for an L7
   * load balancer in front of the Proxy, besides the system roots.
   */
  readonly proxyCa?: string;
}

export interface SmtpConfig {
  readonly kind: "smtp";
  readonly host: string;
  /** Default 587; 465 means implicit TLS. */
  readonly port: number;
  /** Absent: no AUTH (unauthenticated relay). */
  readonly username?: string;
  /** From `smtp.password` or the trimmed contents of `smtp.password_file`. */
  readonly password?: Secret;
  readonly starttlsPolicy: StarttlsPolicy;
  /** `smtp.ca_file`: extra CA certificates (PEM text, already read) to trust. */
  readonly ca?: string;
  /**
   * `smtp.allow_insecure_auth`, default false: AUTH may go over a connection
   * that is not encrypted (no STARTTLS offered, STARTTLS refused, or
   * `starttls_policy = "disabled"`). Without it the mailer refuses to send the
   * password in the clear and the send or health check fails.
   */
  readonly allowInsecureAuth?: boolean;
}

export interface MailgunConfig {
  readonly kind: "mailgun";
  readonly domain: string;
  /** From `mailgun.private_key` or the trimmed contents of `mailgun.private_key_file`. */
  readonly privateKey: Secret;
  /** `mailgun.api_base`, default `https://api.mailgun.net`, no trailing slash, no user info. */
  readonly apiBase: string;
  /**
   * `mailgun.allow_insecure_http`, default false: an `http://` `api_base` off
   * the loopback interface is accepted (the key then travels unencrypted).
   */
  readonly allowInsecureHttp?: boolean;
}

/** `[log]`, normalised: severities in lower case, output aliases resolved. */
export type LogConfig = LogOptions;

export interface Config {
  readonly teleport: TeleportConfig;
  /** The mailer in use: SMTP when `[smtp]` is present, else Mailgun. */
  readonly mailer: SmtpConfig | MailgunConfig;
  readonly delivery: {
    /** `delivery.sender` as written (may carry a display name). */
    readonly sender: string;
    /** `delivery.notify_requester`: a requester whose user name is an address gets a thread. */
    readonly notifyRequester: boolean;
    /** `delivery.max_recipients`: "new request" emails per request, at most (default 100). */
    readonly maxRecipients: number;
    /**
     * `delivery.catch_up_window`: pending requests nobody handled are caught
     * up after a (re)connect only when created within it (default 24 h; 0: none).
     */
    readonly catchUpWindowMs: number;
  };
  /** Role name → plain addresses; always has a non-empty `"*"` entry. */
  readonly roleToRecipients: Readonly<Record<string, readonly string[]>>;
  readonly log: LogConfig;
  /** `[reminders]`: absent = no reminders. */
  readonly reminders?: {
    readonly afterMs: number;
    readonly everyMs: number;
    readonly max: number;
  };
  /** `[escalation]`: absent = no escalation. */
  readonly escalation?: EscalationConfig;
  /** `[access_expiry]`: absent = no warnings before granted access ends. */
  readonly accessExpiry?: AccessExpiryConfig;
  /** `[templates]`: the operator's message templates; absent = the built-in emails. */
  readonly templates?: TemplateSources;
  /** `[status]`: the optional health and metrics listener. */
  readonly status: {
    /** `status.listen_addr`, e.g. `127.0.0.1:9465`; absent = no listener. */
    readonly listenAddr?: string;
  };
}

/** What validation has to say besides the config: warnings to log once logging is up. */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly string[];
}

/** One escalation level: `[escalation]` itself, then each `[[escalation.levels]]`. */
export interface EscalationLevelConfig {
  /** `after`: since the request was created, in milliseconds. */
  readonly afterMs: number;
  /** `recipients`: the `"*"` list, for requested roles without a list of their own. */
  readonly recipients: readonly string[];
  /** `role_to_recipients`: role name → plain addresses (may be empty). */
  readonly roleToRecipients: Readonly<Record<string, readonly string[]>>;
}

/** `[escalation]`: levels in ascending `afterMs`; the first is `[escalation]` itself. */
export interface EscalationConfig {
  readonly levels: readonly EscalationLevelConfig[];
}

/** `[access_expiry]`: `warn_before` in milliseconds, longest first, each once. */
export interface AccessExpiryConfig {
  readonly warnBeforeMs: readonly number[];
}
