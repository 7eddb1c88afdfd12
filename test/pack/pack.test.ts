// The published package works where nothing can compile: `npm pack`, install the
// tarball into an empty folder with no compiler on PATH, then require() and
// import() both run an op on the prebuilt binary. Without a binary, loading fails
// with ERR_NO_BINARY and says how to build.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const root = path.resolve(__dirname, "..", "..");
const npmCli = path.join(path.dirname(fs.realpathSync(process.execPath)), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");

let work: string;
let app: string;
let env: NodeJS.ProcessEnv;

beforeAll(() => {
  expect(fs.existsSync(path.join(root, "prebuilds", `${process.platform}-${process.arch}`, "node.napi.node"))).toBe(true);
  expect(fs.existsSync(path.join(root, "dist", "index.cjs"))).toBe(true);
  work = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-pack-"));
  // PATH with node and nothing else: no cc, g++, make, cmake or python.
  const bin = path.join(work, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  env = { HOME: process.env.HOME, PATH: bin, npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), ".npm") };
  for (const tool of ["cc", "gcc", "g++", "c++", "make", "cmake", "python3"])
    expect(() => execFileSync("sh", ["-c", `command -v ${tool}`], { env })).toThrow();

  const packed = execFileSync(process.execPath, [npmCli, "pack", "--ignore-scripts", "--json", "--pack-destination", work], { cwd: root }).toString();
  const tarball = path.join(work, (JSON.parse(packed) as { filename: string }[])[0]!.filename);
  app = path.join(work, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  execFileSync(process.execPath, [npmCli, "install", "--prefer-offline", "--no-audit", "--no-fund", tarball], { cwd: app, env, stdio: "pipe" });
}, 180_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

test("require('fastdiff') runs an op", () => {
  const out = execFileSync(process.execPath, ["-e", `
    const fd = require("fastdiff");
    const y = fd.matmul(fd.tensor([[1, 2], [3, 4]]), fd.ones([2, 1]));
    console.log(JSON.stringify(Array.from(y.dataSync())));`], { cwd: app, env }).toString();
  expect(JSON.parse(out)).toEqual([3, 7]);
});

test("import('fastdiff') runs an op", () => {
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", `
    import { tensor, sum } from "fastdiff";
    console.log(sum(tensor([1, 2, 3])).item());`], { cwd: app, env }).toString();
  expect(out.trim()).toBe("6");
});

test("the CLI runs from the installed package", () => {
  const out = execFileSync(path.join(app, "node_modules", ".bin", "fastdiff"), ["doctor"], { cwd: app, env }).toString();
  expect(out).toMatch(/kernels\s+avx/);
});

test("a missing binary is a clear ERR_NO_BINARY error that says how to build", () => {
  const pkg = path.join(app, "node_modules", "fastdiff");
  fs.rmSync(path.join(pkg, "prebuilds"), { recursive: true, force: true });
  const out = execFileSync(process.execPath, ["-e", `
    try { require("fastdiff"); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`], { cwd: app, env }).toString();
  const err = JSON.parse(out) as { code: string; message: string };
  expect(err.code).toBe("ERR_NO_BINARY");
  expect(err.message).toMatch(/npx fastdiff build/);
});
