/** A mistake in what the user gave us (inputs, files): reported as one clear error, nothing deployed. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** A stack file Docker would refuse to load, with where: pre-flight reports it as a finding (annotation, summary). */
export class ComposeFileError extends InputError {
  constructor(
    readonly rule: 'invalid-yaml' | 'unknown-key',
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${col}: ${reason}`);
  }
}
