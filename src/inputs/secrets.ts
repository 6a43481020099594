import { addMask } from '../mask';
import { Get, parseKeyValues, words } from './values';

/** The stacks' external secrets: given values, generated ones, and which are shared. */
export interface SecretInputs {
  /** Values for the stacks' external secrets (masked). */
  secrets: Record<string, string>;
  generateSecrets: string[];
  /** Keys of given or generated secrets that every stack declaring them shares (one Swarm secret). */
  sharedSecrets: string[];
}

const SECRET_INPUTS = ['registry-password', 'ssh-key', 'ssh-passphrase', 'secrets', 'github-token'];

/** Masks every secret input whole, before anything could fail or print. */
export function maskSecretInputs(get: Get): void {
  for (const secret of SECRET_INPUTS) {
    const v = get(secret);
    if (v) addMask(v);
  }
}

export function readSecrets(get: Get): SecretInputs {
  return {
    secrets: secretValues(get('secrets')),
    generateSecrets: words(get('generate-secrets')),
    sharedSecrets: words(get('shared-secrets')),
  };
}

/** `KEY=VALUE` lines of secret values: each value masked before anything else happens. */
function secretValues(text: string): Record<string, string> {
  const values = parseKeyValues(text, 'secrets', { secret: true });
  for (const v of Object.values(values)) if (v) addMask(v);
  return values;
}
