/**
 * Whether a file that holds a secret can be read by more than its owner,
 * and the warning that says how to fix it. The identity file and the secret
 * files of the config (`smtp.password_file`, `mailgun.private_key_file`)
 * share it.
 */

/** Permission bits of group and others. */
const NOT_OWNER_MASK = 0o077;

/**
 * What to say of the file at `path`, of `mode` (`stat`'s, `null` when
 * unknown), that holds `what` ("holds a private key but is accessible…"),
 * or undefined when only its owner may read it.
 */
export function exposedFileWarning(
  path: string,
  what: string,
  mode: number | null,
): string | undefined {
  if (mode === null || (mode & NOT_OWNER_MASK) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return `holds ${what} but is accessible by group or others (mode ${octal}); ` +
    `restrict it with "chmod 600 ${path}"`;
}
