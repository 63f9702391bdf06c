// `federation.strategy.name` -> its plug-in, one re-export per strategy, named as the config names
// it: the one list of strategies (the config schema reads names, options and traits through
// lookup.ts). Adding one: a file here, a line here, its hand-computed test.
export { fedavg } from './fedavg.js';
export { feddyn } from './feddyn.js';
export { fedadagrad, fedadam, fedavgm, fedyogi } from './server-optimizers.js';
export { fedmedian } from './fedmedian.js';
export { fedprox } from './fedprox.js';
export { krum } from './krum.js';
export { relay } from './relay.js';
export { scaffold } from './scaffold.js';
export { trimmedMean as trimmed_mean } from './trimmed-mean.js';
