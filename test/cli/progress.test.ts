// Progress reporting and argument parsing, without spawning the CLI.
import { parseArgs, UsageError } from "../../lib/cli/args";
import { formatDuration, Progress } from "../../lib/cli/progress";

function fakeStream(tty: boolean): NodeJS.WriteStream & { text: string } {
  const s = { text: "", isTTY: tty, write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

describe("Progress", () => {
  it("on a terminal: one bar redrawn in place, with percent, rate, ETA and fields", () => {
    const stream = fakeStream(true);
    const p = new Progress({ task: "train", total: 40, stream });
    p.update(10, { loss: 0.1234567 }, 5);
    p.update(20, { loss: 0.05 }, 5);
    p.finish();
    const frames = stream.text.split("\r").filter(Boolean);
    expect(frames).toHaveLength(2);
    expect(frames[0]).toMatch(/^train \[######\.{18}\]  25% 10\/40 5\.00 it\/s ETA 6s  loss 0\.1235/);
    expect(frames[1]).toMatch(/ 50% 20\/40 .* ETA 4s  loss 0\.05000/);
    expect(stream.text.endsWith("\n")).toBe(true);
  });

  it("not a terminal: plain lines every 10% (and at the end), no carriage returns", () => {
    const stream = fakeStream(false);
    const p = new Progress({ task: "sample", total: 100, unit: "step", stream });
    for (let i = 1; i <= 100; ++i) p.update(i, {}, 10);
    const lines = stream.text.trim().split("\n");
    expect(stream.text).not.toContain("\r");
    expect(lines).toHaveLength(10);
    expect(lines[0]).toMatch(/^sample 10% 10\/100 10\.0 step\/s ETA 9s$/);
    expect(lines.at(-1)).toMatch(/^sample 100% 100\/100/);
  });

  it("--json: one event object per update on stdout", () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (out.push(String(c)), true));
    try {
      const p = new Progress({ task: "train", total: 4, json: true });
      p.update(1, { loss: 0.5 }, 2);
      p.update(4, { loss: 0.25 }, 2);
    } finally {
      spy.mockRestore();
    }
    const events = out.join("").trim().split("\n").map((l) => JSON.parse(l));
    expect(events).toEqual([
      { event: "progress", task: "train", done: 1, total: 4, perSecond: 2, etaSeconds: 1.5, loss: 0.5 },
      { event: "progress", task: "train", done: 4, total: 4, perSecond: 2, etaSeconds: 0, loss: 0.25 },
    ]);
  });

  it("durations read like a clock", () => {
    expect([formatDuration(5.4), formatDuration(83), formatDuration(7300), formatDuration(NaN)]).toEqual(["5s", "1m23s", "2h01m", "?"]);
  });
});

describe("parseArgs", () => {
  const specs = {
    n: { type: "int", help: "", min: 1, default: 4 },
    lr: { type: "number", help: "" },
    solver: { type: "string", help: "", choices: ["euler", "heun"] },
    json: { type: "bool", help: "" },
  } as const;
  it("values, defaults, --name=value, flags and positionals", () => {
    expect(parseArgs("x", ["--lr=0.5", "file", "--json", "--solver", "heun"], specs)).toEqual({ _: ["file"], n: 4, lr: 0.5, json: true, solver: "heun" });
  });
  it.each([
    [["--n", "2.5"], /--n must be an integer, got '2.5'/],
    [["--n", "0"], /--n must be ≥ 1, got 0/],
    [["--lr"], /--lr needs a value/],
    [["--lr", "--json"], /--lr needs a value/],
    [["--solver", "rk4"], /--solver must be one of euler, heun, got 'rk4'/],
    [["--json=1"], /--json takes no value/],
    [["--nope"], /unknown option --nope/],
  ])("%j is a UsageError", (argv, pattern) => {
    expect(() => parseArgs("x", argv as string[], specs)).toThrow(UsageError);
    expect(() => parseArgs("x", argv as string[], specs)).toThrow(pattern);
  });
});
