import type { z } from 'zod';
import type { ModePlugin, ModeTraits } from './mode.js';
import * as REGISTRY from './registry.js';

/** Every server mode by name (registry.ts), in name order. */
export const MODES = REGISTRY satisfies Record<string, { options: z.ZodRawShape; traits: ModeTraits }>;

export type ServerMode = keyof typeof MODES;
export const SERVER_MODES = Object.keys(MODES).sort() as [ServerMode, ...ServerMode[]];
/** federation.mode's default. */
export const DEFAULT_MODE: ServerMode = 'hierarchical';

export const modeTraits = (name: ServerMode): ModeTraits => MODES[name].traits;

/** The modes that have a trait, for messages that name them. */
export const modesWith = (trait: keyof ModeTraits): ServerMode[] => SERVER_MODES.filter((m) => MODES[m].traits[trait]);

/** The mode's plug-in, its options typed loosely (the schema has parsed every mode's keys). */
export const modePlugin = (name: ServerMode): ModePlugin => MODES[name] as unknown as ModePlugin;
