/**
 * Vite plugin for the vitest configs: resolve workspace packages (packages/*) to their TypeScript
 * sources — the "@chunkrelay/source" export condition — so tests need no build and never run a
 * stale dist/. Added to every Vite environment, not only `ssr`: vitest loads global setup files
 * in an environment of its own, which neither `resolve.conditions` nor `ssr.resolve.conditions`
 * reaches.
 */
import { type Plugin, defaultClientConditions, defaultServerConditions } from "vite";

export const SOURCE_CONDITION = "@chunkrelay/source";

export function sourceCondition(): Plugin {
  return {
    name: "chunkrelay:source-condition",
    configEnvironment(_name, config) {
      const given = config.resolve?.conditions;
      // Vite fills in its defaults only when an environment sets no conditions, so setting ours
      // alone would drop them; and what is returned here is appended to what is already set.
      if (given !== undefined)
        return { resolve: { conditions: given.includes(SOURCE_CONDITION) ? [] : [SOURCE_CONDITION] } };
      const defaults = config.consumer === "client" ? defaultClientConditions : defaultServerConditions;
      return { resolve: { conditions: [SOURCE_CONDITION, ...defaults] } };
    },
  };
}
