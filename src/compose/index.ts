/** Docker stack (compose) files: load, interpolate, locate, merge, and the files they reference. */
export * from './load';
export * from './resolve';
export * from './positions';
export * from './services';
export * from './refs';
