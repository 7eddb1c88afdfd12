// Progress reporting for long work: a bar with rate and ETA on a terminal, plain log lines (every ~10 s or
// 10 %) when output is not a TTY, JSON events (one object per line) with --json.
export interface ProgressFields {
  [key: string]: number | string | undefined;
}

export interface ProgressOptions {
  /** What is being done ("train", "sample"…), shown and put in JSON events. */
  task: string;
  total: number;
  /** The unit of `done` ("it", "step", "img"). */
  unit?: string;
  json?: boolean;
  stream?: NodeJS.WriteStream;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function formatField(v: number | string): string {
  if (typeof v === "string") return v;
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return Math.abs(v) < 1e-3 && v !== 0 ? v.toExponential(2) : v.toPrecision(4);
}

export class Progress {
  private readonly start = performance.now();
  private lastLine = this.start;
  private lastFraction = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = !options.json && Boolean(this.stream.isTTY);
  }

  /** `done` units of `total` finished; `rate` overrides the measured units/s (e.g. after a resume). */
  update(done: number, fields: ProgressFields = {}, rate?: number, totalNow?: number): void {
    const { task, unit = "it" } = this.options;
    const total = totalNow ?? this.options.total;
    const elapsed = (performance.now() - this.start) / 1000;
    const perSecond = rate ?? done / Math.max(elapsed, 1e-9);
    const eta = (total - done) / Math.max(perSecond, 1e-12);
    if (this.options.json) {
      process.stdout.write(`${JSON.stringify({ event: "progress", task, done, total, perSecond, etaSeconds: eta, ...fields })}\n`);
      return;
    }
    const extras = Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${formatField(v!)}`).join("  ");
    const fraction = total > 0 ? done / total : 1;
    const stats = `${done}/${total} ${perSecond.toFixed(perSecond < 10 ? 2 : 1)} ${unit}/s ETA ${formatDuration(eta)}${extras ? `  ${extras}` : ""}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      this.stream.write(`\r${task} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${stats}\x1b[K`);
      return;
    }
    const now = performance.now();
    if (done === total || now - this.lastLine > 10_000 || fraction - this.lastFraction >= 0.1) {
      this.stream.write(`${task} ${(fraction * 100).toFixed(0)}% ${stats}\n`);
      this.lastLine = now;
      this.lastFraction = fraction;
    }
  }

  /** Ends the bar (a newline on a terminal). */
  finish(): void {
    if (this.tty) this.stream.write("\n");
  }
}
