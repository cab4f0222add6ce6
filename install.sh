#!/usr/bin/env bash
# Installs the Teleport Access Email plugin from an unpacked release tarball
# (shipped there as `install`, beside `teleport-email` and
# `teleport-email.service`). Run it as root from any directory:
#
#   sudo ./teleport-access-email/install
#
# What it does (safe to run again; an upgrade is the same command):
#   - copies teleport-email to $BINDIR (default /usr/local/bin), mode 0755;
#   - creates /var/lib/teleport/plugins/email (0755, as in the Teleport docs;
#     the identity file in it is written 0600 by tctl/tbot) if missing, and
#     never changes the mode of an existing one;
#   - installs /etc/systemd/system/teleport-email.service (0644) when systemd
#     is present, then runs `systemctl daemon-reload` when systemd is running;
#     the unit is ours and is replaced on every run: customise it with a
#     drop-in (`systemctl edit teleport-email`), not by editing it; a unit
#     that is running is restarted (an upgrade), one that is not is left so;
#   - never creates or touches /etc/teleport-email.toml.
#
# Environment:
#   BINDIR        where the binary goes (default /usr/local/bin); the unit's
#                 ExecStart is rewritten to match.
#   INSTALL_ROOT  install into this directory instead of / (like DESTDIR, for
#                 building images and for tests). With it, the unit file is
#                 always installed and systemctl is never run, since the
#                 running system is not the one being installed. It does NOT
#                 lift the root check: writing a system tree needs root, and
#                 the check stays the real one everywhere.
set -euo pipefail
umask 022

readonly UNIT_NAME="teleport-email.service"
readonly DEFAULT_BINDIR="/usr/local/bin"
readonly DATA_DIR="/var/lib/teleport/plugins/email"
readonly UNIT_DIR="/etc/systemd/system"
readonly CONFIG_FILE="/etc/teleport-email.toml"

die() {
  printf 'teleport-email install: error: %s\n' "$*" >&2
  exit 1
}

if [[ "$(id -u)" -ne 0 ]]; then
  die "must run as root (try: sudo $0)"
fi

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly SRC_BIN="$SCRIPT_DIR/teleport-email"
readonly SRC_UNIT="$SCRIPT_DIR/$UNIT_NAME"

BINDIR="${BINDIR:-$DEFAULT_BINDIR}"
[[ "$BINDIR" == /* ]] || die "BINDIR must be an absolute path, got \"$BINDIR\""
# `|` would break the sed that rewrites ExecStart below.
[[ "$BINDIR" != *'|'* ]] || die "BINDIR must not contain \"|\", got \"$BINDIR\""
BINDIR="${BINDIR%/}"
readonly EXEC_PATH="$BINDIR/teleport-email"
ROOT="${INSTALL_ROOT:-}"
[[ -z "$ROOT" || "$ROOT" == /* ]] || die "INSTALL_ROOT must be an absolute path, got \"$ROOT\""
ROOT="${ROOT%/}"

[[ -f "$SRC_BIN" ]] || die "teleport-email not found beside this script in \"$SCRIPT_DIR\""
[[ -f "$SRC_UNIT" ]] || die "$UNIT_NAME not found beside this script in \"$SCRIPT_DIR\""

# Binary: write a temporary file, check that it runs here, then rename it over
# the old one, so a running daemon keeps its (unlinked) executable, nobody sees
# a half-copied file, and a package for the wrong architecture replaces nothing.
dest_bin="$ROOT$EXEC_PATH"
# A directory that exists keeps its mode and owner (a group-managed /usr/local/bin, 2775).
[[ -d "$ROOT$BINDIR" ]] || install -d -m 0755 "$ROOT$BINDIR"
tmp_bin="$ROOT$BINDIR/.teleport-email.install.$$"
tmp_unit=""
trap 'rm -f -- "$tmp_bin" ${tmp_unit:+"$tmp_unit"}' EXIT
install -m 0755 -- "$SRC_BIN" "$tmp_bin"
if ! version_line="$("$tmp_bin" version 2>&1)"; then
  die "teleport-email from \"$SCRIPT_DIR\" does not run on this machine ($(uname -m)):" \
    "is this the package for this architecture? Output: $version_line"
fi
mv -f -- "$tmp_bin" "$dest_bin"
echo "Installed $dest_bin ($version_line)"

data_dir="$ROOT$DATA_DIR"
if [[ -d "$data_dir" ]]; then
  echo "Kept existing $data_dir"
else
  install -d -m 0755 "$data_dir"
  echo "Created $data_dir"
fi

# systemd counts as present when it is running (/run/systemd/system, the
# sd_booted() test) or merely installed (systemctl on PATH, e.g. an image
# being built); it can only be asked to reload when it is running.
install_unit=false
reload_systemd=false
restarted=false
not_restarted=false
if [[ -n "$ROOT" ]]; then
  install_unit=true
elif [[ -d /run/systemd/system ]]; then
  install_unit=true
  reload_systemd=true
elif command -v systemctl >/dev/null 2>&1; then
  install_unit=true
fi

if [[ "$install_unit" == true ]]; then
  dest_unit="$ROOT$UNIT_DIR/$UNIT_NAME"
  [[ -d "$ROOT$UNIT_DIR" ]] || install -d -m 0755 "$ROOT$UNIT_DIR"
  tmp_unit="$ROOT$UNIT_DIR/.$UNIT_NAME.install.$$"
  # Only the program path of ExecStart follows BINDIR.
  sed "s|^ExecStart=$DEFAULT_BINDIR/teleport-email |ExecStart=$EXEC_PATH |" \
    "$SRC_UNIT" >"$tmp_unit"
  chmod 0644 "$tmp_unit"
  mv -f -- "$tmp_unit" "$dest_unit"
  echo "Installed $dest_unit"
  if [[ "$reload_systemd" == true ]]; then
    systemctl daemon-reload
    echo "Reloaded systemd"
    # An upgrade: the running daemon still runs the old program until it restarts. Stopping
    # lets it finish its in-flight emails (SIGTERM, up to 15 s). Not when the new version
    # refuses the configuration: the old one keeps running instead of a restart loop.
    if systemctl is-active --quiet "$UNIT_NAME"; then
      # From /, as the service runs: relative paths in the config are read from there.
      if [[ -e "$CONFIG_FILE" ]] &&
        ! check="$(cd / && "$dest_bin" preview --config="$CONFIG_FILE" 2>&1 >/dev/null)"; then
        printf 'warning: the new version refuses %s, so the running service was not restarted:\n%s\n%s\n' \
          "$CONFIG_FILE" "$check" \
          "(it is installed: the next restart of the service, or a reboot, starts it on this config)" >&2
        not_restarted=true
      elif ! systemctl try-restart "$UNIT_NAME"; then
        echo "warning: restarting $UNIT_NAME failed; see: journalctl -u $UNIT_NAME" >&2
        not_restarted=true
      else
        restarted=true
        echo "Restarted $UNIT_NAME: it runs the new version now"
      fi
    fi
  fi
else
  echo "systemd not found: no unit installed; run \"$EXEC_PATH start\" under your service manager"
fi

config="$ROOT$CONFIG_FILE"
echo
echo "Next steps:"
if [[ -e "$config" ]]; then
  echo "  1. Kept your existing $CONFIG_FILE; compare it with \"teleport-email configure\" for new keys."
else
  echo "  1. Write the example configuration (it will hold secrets, so keep it private):"
  echo "       $EXEC_PATH configure | sudo tee $CONFIG_FILE >/dev/null"
  echo "       sudo chmod 0600 $CONFIG_FILE"
fi
echo "  2. Edit $CONFIG_FILE: [teleport] addr and identity (e.g. $DATA_DIR/identity),"
echo "     [smtp] or [mailgun], [delivery] sender, [role_to_recipients]; a secret file such as"
echo "     $DATA_DIR/smtp_password must be readable by root only (sudo chmod 0600 …)."
if [[ "$not_restarted" == true ]]; then
  echo "  3. Fix the above, then: sudo systemctl restart teleport-email"
elif [[ "$restarted" == true ]]; then
  echo "  3. Nothing: the service was running and has been restarted"
  echo "     (\"sudo systemctl enable teleport-email\" if it should also start at boot)."
elif [[ "$install_unit" == true ]]; then
  echo "  3. sudo systemctl enable --now teleport-email"
else
  echo "  3. $EXEC_PATH start --config=$CONFIG_FILE"
fi
