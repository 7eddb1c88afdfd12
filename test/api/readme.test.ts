// The README's API tour is real code: transpile it and run it against this build,
// so the README stays true.
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import * as fd from "../../lib";

test("the README API tour runs", async () => {
  const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
  const tour = readme.slice(readme.indexOf("## API tour")).match(/```ts\n([\s\S]*?)```/)![1]!;
  expect(tour).toContain('from "fastdiff"');
  const js = ts.transpileModule(tour.replace('import * as fd from "fastdiff";', ""), {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.None },
  }).outputText;
  const lines: string[] = [];
  const log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  const run = new Function("fd", "console", `return (async () => {\n${js}\n})();`) as (
    f: typeof fd,
    c: { log: typeof log },
  ) => Promise<void>;
  await run(fd, { log });
  expect(lines[0]).toBe("40");
  expect(lines[1]).toMatch(/^\[object Object\]$/); // memory() was printed
  expect(lines.at(-1)).toBe("ERR_SHAPE matmul: inner dimensions differ: [2, 3] @ [4, 5]");
});
