import { InputError } from '../errors';

// A service name as the stacks and the `versions` output spell it; a version is a Docker tag.
const SERVICE_NAME = /^[a-z][a-z0-9]*(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** One given version: the service, its version as read, and where it was read, for messages. */
type Pair = [string, unknown, string];

/** `versions`: `name=version` lines, or the JSON object the `versions` output gives. */
export function parseVersions(text: string): Record<string, string> {
  const raw = text.trim();
  if (!raw) return {};
  const pairs = raw.startsWith('{') || raw.startsWith('[') ? jsonPairs(raw) : linePairs(raw);
  const out: Record<string, string> = {};
  for (const [name, version, where] of pairs) {
    if (!SERVICE_NAME.test(name)) {
      const shown = String(name).slice(0, 60);
      throw new InputError(
        `Input \`versions\` ${where}: "${shown}" is not a service name ` +
          '(lower-case letters and digits, . _ - between them, starting with a letter).',
      );
    }
    if (typeof version !== 'string' || !TAG.test(version)) {
      const shown = JSON.stringify(version)?.slice(0, 60);
      throw new InputError(
        `Input \`versions\` ${where}: the version of ${name}, ${shown}, is not a valid image tag ` +
          '(letters, digits, _ . -, at most 128, not starting with . or -).',
      );
    }
    if (name in out) throw new InputError(`Input \`versions\`: ${name} is given twice.`);
    out[name] = version;
  }
  return out;
}

function jsonPairs(raw: string): Pair[] {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (e) {
    throw new InputError(
      `Input \`versions\`: not valid JSON (${(e as Error).message}); ` +
        'give a JSON object {"name": "1.2.3"} or name=version lines.',
    );
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new InputError('Input `versions`: the JSON must be an object {"name": "1.2.3"}.');
  return Object.entries(data as Record<string, unknown>).map(([k, v]) => [k, v, `"${k}"`]);
}

function linePairs(raw: string): Pair[] {
  const pairs: Pair[] = [];
  raw.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq < 0)
      throw new InputError(`Input \`versions\` line ${i + 1}: "${line.trim().slice(0, 60)}" is not name=version.`);
    pairs.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim(), `line ${i + 1}`]);
  });
  return pairs;
}
