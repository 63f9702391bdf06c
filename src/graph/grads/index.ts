// Importing this module registers every gradient rule.
import './elementwise.js';
import './unary.js';
import './reduce.js';
import './linalg.js';
import './shape.js';
import './select.js';
import './quant.js';
export { registeredGradientOps } from './registry.js';
