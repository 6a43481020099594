/**
 * Swaps process.stdout.write for a buffer (core.info and core.setSecret print workflow commands
 * there). Call the returned function to put stdout back and get what was written.
 */
export function captureStdout(): () => string {
  const write = process.stdout.write;
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  return () => {
    process.stdout.write = write;
    return out;
  };
}

/** Runs `fn` with stdout captured; what it wrote comes back with its value (and is dropped on a throw). */
export async function captured<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  const stop = captureStdout();
  try {
    const value = await fn();
    return { value, out: stop() };
  } catch (e) {
    stop();
    throw e;
  }
}
