/** A mistake in what the user gave us (inputs, files): reported as one clear error, nothing deployed. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}
