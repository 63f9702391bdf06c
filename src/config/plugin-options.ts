import type { z } from 'zod';

// The config keys plug-ins read (strategies under federation.strategy, server modes under
// federation): each plug-in declares its own with their defaults, and the schema takes the union.

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

/** Every plug-in's option keys in one shape, typed as all of them together. */
export type MergedOptions<P extends { options: z.ZodRawShape }> = UnionToIntersection<P['options']>;

/**
 * The union of the plug-ins' option shapes. A key several plug-ins read must be one shared schema
 * (one default, one meaning): two different schemas under one name are a programming error.
 */
export function mergedOptions<P extends { options: z.ZodRawShape }>(plugins: Record<string, P>): MergedOptions<P> {
  const out: Record<string, unknown> = {};
  for (const [name, p] of Object.entries(plugins))
    for (const [key, schema] of Object.entries(p.options)) {
      if (out[key] && out[key] !== schema)
        throw new Error(`${name} declares option ${key} with its own schema; share the one already declared`);
      out[key] = schema;
    }
  return out as MergedOptions<P>;
}
