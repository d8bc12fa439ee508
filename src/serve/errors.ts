/** An error answered to the client as `{ error, message }` with an HTTP status, never as a crash or a stack. */
export class ClientError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export const badRequest = (message: string) => new ClientError(400, 'bad_request', message);
export const notFound = (message: string) => new ClientError(404, 'not_found', message);
export const unavailable = (message: string) => new ClientError(503, 'unavailable', message);
