import type { ServerMode } from '../../config/schema.js';
import { batch } from './batch.js';
import { hierarchical } from './hierarchical.js';
import type { ServerModeRunner } from './mode.js';
import { sequential } from './sequential.js';

/** `federation.mode` -> how a round is served. Adding a mode: a file here, a line here, its test. */
export const SERVER_MODE_RUNNERS: Record<ServerMode, ServerModeRunner> = { sequential, batch, hierarchical };
