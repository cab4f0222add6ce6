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

# Behind an L7 load balancer that terminates TLS in front of the Proxy, the plugin
# upgrades the connection (as tsh does); the load balancer's certificate is checked
# against the system roots and these extra CAs (PEM):
# proxy_ca_file = "/etc/ssl/certs/lb-ca.pem"

# Mailer: configure exactly one of [smtp] and [mailgun].
# (If both are present, [smtp] is used and [mailgun] is ignored.)

[smtp]
host = "smtp.example.com"
# 587 uses STARTTLS, 465 implicit TLS. Default: 587.
port = 587
# Leave username out for a relay that needs no authentication.
username = "teleport@example.com"
# The password, or a file holding it (read once at startup, trimmed; keep it mode 0600).
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

# [escalation]
# # When a request is still pending with no review "after" its creation, email an
# # escalation list: each recipient gets a thread of their own (how long it has
# # waited, who was already notified), then the reviews and the resolution. Sent
# # once per level; a review or the resolution stops it. Off unless present.
# after = "4h"
# # For requested roles without a list of their own (required):
# recipients = ["oncall-lead@example.com"]
# # Per requested role, instead of recipients (like [role_to_recipients]); also
# # written as an [escalation.role_to_recipients] table:
# role_to_recipients = { dba = ["dba-lead@example.com"] }
# # Further levels, each later than the one before, with the same keys; also
# # written as [[escalation.levels]] tables:
# levels = [{ after = "24h", recipients = ["security-lead@example.com"] }]

# [access_expiry]
# # Email the requester (when the Teleport user name is an email address) before
# # access granted by an approved request ends (in their own thread when
# # delivery.notify_requester is on), with the tsh command to request it again.
# # Each warning once; none once access has ended. Off unless present.
# warn_before = ["24h", "1h"]

# [templates]
# # Your own subjects and texts (Handlebars: {{field}}, {{#if field}}…{{/if}},
# # {{#each list}}…{{/each}}); without [templates] the built-in emails are sent.
# # Fields: request_id, cluster, user, roles (list), roles_text, reason, resources
# # (list), resources_text, created, expires, access_until, time_zone, link,
# # tsh_approve, tsh_deny, status, status_text, resolution_reason, reviews (list of
# # author, state, state_text, reason, time, roles), review (the same, in review
# # emails), not_emailed, recipient, kind; body templates also see subject.
# # HTML templates escape every value ({{{…}}} is refused); a subject is made one
# # line of at most 200 characters. A template that does not compile or fails on
# # sample data stops start with the key and line; check with: teleport-email preview
# # The subject of every kind without its own (replies thread best with one subject):
# subject = "[ACCESS] {{cluster}} Role Request {{request_id}}"
# # Times are shown in this zone (an IANA name). Default: "UTC".
# time_zone = "UTC"
#
# # One table per kind: new_request, review, resolution, reminder, requester, escalation,
# # access_expiry.
# # Each has subject, text (or text_file) and html (or html_file), all optional;
# # without html, the HTML part is the built-in layout around the text.
# [templates.new_request]
# text = """
# {{user}} asks for {{roles_text}}: {{reason}}
# {{#if link}}Review it: {{link}}{{else}}{{tsh_approve}}{{/if}}
# """
# html_file = "/etc/teleport-email/new_request.html"

# [status]
# # Optional HTTP listener for /healthz, /readyz and /metrics (Prometheus).
# # Off unless set; keep it on loopback or a private network.
# listen_addr = "127.0.0.1:9465"
`;
