/**
 * Whether a file that holds a secret can be read by more than its owner,
 * and the warning that says how to fix it. The identity file, the secret
 * files of the config (`smtp.password_file`, `mailgun.private_key_file`) and
 * the log file share it.
 */

/** Permission bits of group and others. */
const NOT_OWNER_MASK = 0o077;

/**
 * What to say of the file at `path`, of `mode` (`stat`'s, `null` when
 * unknown), once the caller has named it ("is accessible by group or
 * others (mode 0644); restrict it with …"), or undefined when only its
 * owner may read it.
 */
export function exposedFileWarning(path: string, mode: number | null): string | undefined {
  if (mode === null || (mode & NOT_OWNER_MASK) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return `is accessible by group or others (mode ${octal}); restrict it with "chmod 600 ${path}"`;
}
