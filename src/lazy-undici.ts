// Bundled in place of `undici` (tsconfig.json "paths"). @actions/core loads @actions/http-client for
// its OIDC token, which requires undici as it loads; only the HTTP client's proxy agent uses it, and
// this action never asks for a token. Evaluating undici was a fifth of the bundle's start (~40 ms of
// 0.2 s, measured with --cpu-prof): it now loads on the first use of anything it exports.
type Undici = Record<string | symbol, unknown>;
let real: Undici | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (): Undici => (real ??= require('undici/index.js') as Undici);

module.exports = new Proxy({} as Undici, {
  get: (_target, key) => load()[key],
  has: (_target, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_target, key) => {
    const d = Reflect.getOwnPropertyDescriptor(load(), key);
    return d && { ...d, configurable: true };
  },
});
