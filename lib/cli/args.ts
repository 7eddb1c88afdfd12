// Command-line arguments: `--name value`, `--flag`, `--name=value`. Every problem is a UsageError (one line,
// exit code 2 in the CLI), never a stack trace.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface FlagSpec {
  /** "string" | "int" | "number" | "bool" (a bare flag). */
  type: "string" | "int" | "number" | "bool";
  help: string;
  default?: string | number | boolean;
  /** Allowed values for strings. */
  choices?: readonly string[];
  /** Inclusive lower bound for numbers. */
  min?: number;
}

export type Parsed = { _: string[]; [name: string]: string | number | boolean | undefined | string[] };

export function parseArgs(command: string, argv: readonly string[], specs: Record<string, FlagSpec>): Parsed {
  const out: Parsed = { _: [] };
  for (const [name, s] of Object.entries(specs)) if (s.default !== undefined) out[name] = s.default;
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      out._.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const spec = specs[name];
    if (!spec) throw new UsageError(`${command}: unknown option --${name} (see 'fastdiff ${command} --help')`);
    if (spec.type === "bool") {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      out[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith("--"))) throw new UsageError(`${command}: --${name} needs a value`);
    out[name] = convert(command, name, spec, value);
  }
  return out;
}

function convert(command: string, name: string, spec: FlagSpec, value: string): string | number {
  if (spec.type === "string") {
    if (spec.choices && !spec.choices.includes(value))
      throw new UsageError(`${command}: --${name} must be one of ${spec.choices.join(", ")}, got '${value}'`);
    return value;
  }
  const n = Number(value);
  const ok = value.trim() !== "" && Number.isFinite(n) && (spec.type === "number" || Number.isInteger(n));
  if (!ok) throw new UsageError(`${command}: --${name} must be ${spec.type === "int" ? "an integer" : "a number"}, got '${value}'`);
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`${command}: --${name} must be ≥ ${spec.min}, got ${value}`);
  return n;
}

/** The help text of a command's flags. */
export function flagHelp(specs: Record<string, FlagSpec>): string {
  return Object.entries(specs)
    .map(([name, s]) => {
      const left = `  --${name}${s.type === "bool" ? "" : ` <${s.choices ? s.choices.join("|") : s.type}>`}`;
      const def = s.default !== undefined && s.type !== "bool" ? ` [${String(s.default)}]` : "";
      return `${left.padEnd(34)} ${s.help}${def}`;
    })
    .join("\n");
}
