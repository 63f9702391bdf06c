// `federation.mode` -> how a round is served, one re-export per mode, named as the config names it:
// the one list of modes (the config schema reads names, options and traits through lookup.ts).
// Adding one: a file here, a line here, its federation test.
export { batch } from './batch.js';
export { hierarchical } from './hierarchical.js';
export { interleaved } from './interleaved.js';
export { lockstep } from './lockstep.js';
export { sequential } from './sequential.js';
