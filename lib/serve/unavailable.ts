/** An error the HTTP layer answers with 503 and a `code` naming why (loading, failed, draining). */
export class Unavailable extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
