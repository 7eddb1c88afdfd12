// The README's code blocks are real code: transpile them and run them against this build,
// so the README stays true.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as ts from "typescript";
import * as fd from "../../lib";

const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");

/** The first ```ts block after `heading`, run with fd/os/path injected; returns what it printed. */
async function runBlock(heading: string): Promise<string[]> {
  const code = readme.slice(readme.indexOf(heading)).match(/```ts\n([\s\S]*?)```/)![1]!;
  expect(code).toContain('import * as fd from "fastdiff";');
  const body = code.replace(/^import .*;$/gm, "");
  const js = ts.transpileModule(body, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.None } }).outputText;
  const lines: string[] = [];
  const log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  const run = new Function("fd", "os", "path", "console", `return (async () => {\n${js}\n})();`) as (
    f: typeof fd, o: typeof os, p: typeof path, c: { log: typeof log },
  ) => Promise<void>;
  await run(fd, os, path, { log });
  return lines;
}

test("the README API tour runs", async () => {
  const lines = await runBlock("## API tour");
  expect(lines[0]).toBe("40");
  expect(lines[1]).toMatch(/^\[object Object\]$/); // memory() was printed
  expect(lines.at(-1)).toBe("ERR_SHAPE matmul: inner dimensions differ: [2, 3] @ [4, 5]");
});

test("the README FRDiff tour runs", async () => {
  const lines = await runBlock("### Faster sampling without training");
  expect(lines[0]).toBe('{"keyframes":7,"reused":7,"skipped":6} 0.51');
  expect(lines[1]).toBe("true 0");
}, 60_000);

test("the README denoiser and sampler tour runs", async () => {
  try {
    const lines = await runBlock("### Denoisers and samplers");
    expect(lines[0]).toMatch(/^\d+ \d+ down_blocks\.0\.resnets\.0\.conv1$/);
    expect(lines[1]).toBe("4,1,16,16 15");
    expect(lines[2]).toBe("1,32,8,8");
  } finally {
    fs.rmSync(path.join(os.tmpdir(), `fastdiff-readme-${process.pid}`), { recursive: true, force: true });
  }
}, 60_000);

test("the README distillation tour runs", async () => {
  try {
    const lines = await runBlock("### Distillation: one-step students");
    expect(lines[0]).toBe("1 6,1,8,8 2,4");
    expect(lines[1]).toBe("sid 4");
  } finally {
    fs.rmSync(path.join(os.tmpdir(), `fastdiff-readme-sid-${process.pid}`), { recursive: true, force: true });
  }
}, 60_000);

test("the README data, training and evaluation tour runs", async () => {
  try {
    const lines = await runBlock("### Data, training, evaluation");
    expect(lines[0]).toBe("8004 8 2");
    expect(lines[1]).toBe("200 true");
    expect(lines[2]).toBe("8 8");
  } finally {
    fs.rmSync(path.join(os.tmpdir(), `fastdiff-readme-train-${process.pid}`), { recursive: true, force: true });
  }
});
