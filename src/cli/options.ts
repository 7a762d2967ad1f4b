/**
 * Option values checked where commander reads them (zod, at the boundary). Loaded with the
 * program itself, also for `--help`: nothing here may import a command's modules, a config
 * schema or the driver.
 */
import { InvalidArgumentError, Option } from "commander";
import { z } from "zod";
import { CliError, EXIT } from "./exit.js";
import { forTerminal, hideUriPasswords } from "../common/terminal-text.js";

function numberArg(schema: z.ZodType<number>, what: string) {
  return (value: string): number => {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new InvalidArgumentError(
        `'${value}' is not ${what}: ${parsed.error.issues[0]?.message ?? "invalid"}.`,
      );
    }
    return parsed.data;
  };
}

export const portArg = numberArg(z.coerce.number().int().min(0).max(65535), "a port (0 picks a free one)");
export const positiveIntArg = numberArg(
  z.coerce.number().int().positive().max(100_000_000),
  "a positive whole number",
);
export const nonNegativeIntArg = numberArg(z.coerce.number().int().min(0), "a whole number ≥ 0");
export const positiveNumberArg = numberArg(z.coerce.number().positive(), "a positive number");
export const msArg = numberArg(z.coerce.number().int().min(0).max(3_600_000), "a duration in ms");
export const rateArg = numberArg(z.coerce.number().min(0).max(1), "a rate between 0 and 1");

export const mongoOption = () =>
  new Option("--mongo <uri>", "MongoDB connection string (default: $MONGODB_URI)").argParser((v) => {
    // Not commander's InvalidArgumentError: its message repeats the value, password included.
    if (!/^mongodb(\+srv)?:\/\//.test(v))
      throw new CliError(
        `--mongo '${forTerminal(hideUriPasswords(v, [v]))}' is not a MongoDB connection string: expected mongodb://… or mongodb+srv://…`,
        EXIT.usage,
      );
    return v;
  });
