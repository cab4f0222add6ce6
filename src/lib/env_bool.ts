/**
 * Boolean environment variables read as Teleport's Go plugins read them
 * (`strconv.ParseBool`): `1 t T TRUE true True` and `0 f F FALSE false False`;
 * unset or empty is `false`; anything else is an error naming the variable.
 */

const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

export function envBool(env: Readonly<Record<string, string | undefined>>, name: string): boolean {
  const value = env[name];
  if (value === undefined || value === "") return false;
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw new Error(
    `Cannot parse ${name} ${
      JSON.stringify(value)
    }: expected true or false (1, t, TRUE, 0, f, FALSE…)`,
  );
}
