/**
 * The example configuration printed by `teleport-email configure`. Unlike the
 * Go plugin's, it is valid TOML with exactly one mailer active, and it passes
 * validation once the SMTP password file exists. Every key is documented;
 * alternatives and deprecated aliases are commented out.
 */
import { STARTTLS_POLICIES, type StarttlsPolicy } from "./types.ts";

/** What each `smtp.starttls_policy` does, for the template's comment. */
const STARTTLS_POLICY_HELP: Readonly<Record<StarttlsPolicy, string>> = {
  mandatory: "fail when the server does not offer STARTTLS",
  opportunistic:
    "use STARTTLS when the server offers it, else send in plaintext (never the password)",
  disabled: "never use STARTTLS (with a username, needs allow_insecure_auth = true)",
};

const STARTTLS_POLICY_LINES = STARTTLS_POLICIES
  .map((policy) => `#   ${policy}: ${STARTTLS_POLICY_HELP[policy]}`)
  .join("\n");

/** Commented example config (TOML), ending with a newline. */
export const CONFIG_TEMPLATE = `# teleport-email configuration (TOML)
# Save as /etc/teleport-email.toml and run: teleport-email start --config=/etc/teleport-email.toml
# Relative paths below are relative to the current directory of the process.

[teleport]
# Teleport Proxy (443 or 3080, TLS routing) or Auth Server (3025) address.
# Default: "localhost:3025".
addr = "teleport.example.com:443"
# auth_server = "teleport.example.com:443"   # deprecated alias of addr

# Identity file exported with \`tctl auth sign --format=file\` or written by tbot.
identity = "/var/lib/teleport/plugins/email/identity"
# Reload the identity file periodically (for short-lived tbot certificates).
refresh_identity = true
# How often to reload it, as a Go duration ("30s", "1m", "1h30m"); at least "1s".
# Default: "1m".
refresh_identity_interval = "1m"

# Alternative to identity, from \`tctl auth sign --format=tls\` (all three together;
# ignored when identity is set):
# client_key = "/var/lib/teleport/plugins/email/auth.key"   # TLS private key
# client_crt = "/var/lib/teleport/plugins/email/auth.crt"   # TLS certificate
# root_cas = "/var/lib/teleport/plugins/email/auth.cas"     # Teleport CA certificates

# Mailer: configure exactly one of [smtp] and [mailgun].
# (If both are present, [smtp] is used and [mailgun] is ignored.)

[smtp]
host = "smtp.example.com"
# 587 uses STARTTLS, 465 implicit TLS. Default: 587.
port = 587
# Leave username out for a relay that needs no authentication.
username = "teleport@example.com"
# The password, or a file holding it (read once at startup, trimmed).
# password = "..."
password_file = "/var/lib/teleport/plugins/email/smtp_password"
# When to use STARTTLS (ignored on port 465); empty or unset means mandatory:
${STARTTLS_POLICY_LINES}
starttls_policy = "mandatory"
# Extra CA certificates (PEM) to trust for the SMTP server, besides the system ones.
# ca_file = "/var/lib/teleport/plugins/email/smtp_ca.pem"
# The password never travels unencrypted: with "opportunistic" and a server that offers
# no STARTTLS (or refuses it), sending fails instead; "disabled" with a username is an
# error. Only for a relay you reach over a trusted network, accept cleartext AUTH
# (a warning is logged at every start):
# allow_insecure_auth = false

# [mailgun]
# domain = "mg.example.com"
# # The private API key, or a file holding it (read once at startup, trimmed).
# private_key = "..."
# # private_key_file = "/var/lib/teleport/plugins/email/mailgun_private_key"
# # API endpoint; use "https://api.eu.mailgun.net" for the EU region.
# # Default: "https://api.mailgun.net". No user info ("https://user:pass@…").
# api_base = "https://api.mailgun.net"
# # An http:// api_base (other than loopback) sends the key unencrypted and is refused
# # unless this is true (a warning is logged at every start):
# allow_insecure_http = false

[delivery]
# From: address, optionally with a display name: "Teleport <noreply@example.com>".
sender = "noreply@example.com"
# recipients = ["security@example.com"]   # deprecated alias of role_to_recipients."*"
# Also email the requester (when the Teleport user name is an email address):
# request received, each review, and the resolution, in a thread of their own.
# notify_requester = false
# At most this many "new request" emails per request (1 to 1000); the others are
# named in the log and the emails say how many were left out.
# max_recipients = 100
# After a (re)connect, pending requests that no instance has emailed yet are caught up
# only when created within this window, so a first start does not mail an old
# backlog ("0": none; requests seen live are always emailed).
# catch_up_window = "24h"

[role_to_recipients]
# Requests for a role go to its addresses (a string or an array of strings);
# roles without an entry, or with an empty array, go to "*" (required).
"*" = ["security@example.com", "admin@example.com"]
"dev" = "dev-manager@example.com"

[log]
# "stderr", "stdout" or a file path. Default: "stderr".
output = "stderr"
# DEBUG, INFO, WARN or ERROR (case-insensitive). Default: "INFO".
severity = "INFO"
# "text" for people, "json" for log collectors. Default: "text".
format = "text"

# [reminders]
# # Remind reviewers of a request still pending with no review: first after
# # "after", then every "every" (default: same as after), at most "max" times
# # (default 3). Off unless "after" is set.
# after = "1h"
# every = "4h"
# max = 3

# [status]
# # Optional HTTP listener for /healthz, /readyz and /metrics (Prometheus).
# # Off unless set; keep it on loopback or a private network.
# listen_addr = "127.0.0.1:9465"
`;
