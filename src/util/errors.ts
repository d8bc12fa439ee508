/**
 * Errors meant for the user: the CLI prints `message` on one line and exits non-zero, never a stack trace.
 * Anything else that escapes is a bug and is reported as such.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** An input problem located in a file: "FILE:ROW: field 'F': what is wrong". Row is 1-based, as an editor shows it. */
export class InputError extends UserError {
  constructor(
    readonly file: string,
    readonly row: number | undefined,
    readonly field: string | undefined,
    readonly problem: string,
  ) {
    super(`${file}${row !== undefined ? `:${row}` : ''}: ${field !== undefined ? `field '${field}': ` : ''}${problem}`);
    this.name = 'InputError';
  }
}
