#!/usr/bin/env node
// Builds the addon with cmake-js and stores it where node-gyp-build looks first:
// prebuilds/<platform>-<arch>/node.napi.node (an N-API build runs on every Node >= 18).
// FASTDIFF_CUDA (auto|on|off, default off) selects the CUDA backend.
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const cuda = process.env.FASTDIFF_CUDA || "off";
const cmakeJs = path.join(root, "node_modules", "cmake-js", "bin", "cmake-js");
const defines = ["--CDFASTDIFF_CUDA=" + cuda];
if (process.env.FASTDIFF_CUDA_ARCHS) defines.push("--CDCMAKE_CUDA_ARCHITECTURES=" + process.env.FASTDIFF_CUDA_ARCHS);
// Configure every time (cheap when cached): `compile` alone keeps an existing build folder's
// options, so switching FASTDIFF_CUDA would silently build the previous configuration.
const run = (command) => spawnSync(process.execPath, [cmakeJs, command, ...defines], { cwd: root, stdio: "inherit" });
let r = run("configure");
if (r.status === 0) r = run("build");
if (r.status !== 0) {
  console.error("prebuild: cmake-js failed (needs cmake >= 3.18 and a C++17 compiler)");
  process.exit(r.status || 1);
}
const built = path.join(root, "build", "Release", "fastdiff.node");
const dir = path.join(root, "prebuilds", `${process.platform}-${process.arch}`);
fs.mkdirSync(dir, { recursive: true });
const target = path.join(dir, "node.napi.node");
fs.copyFileSync(built, target + ".tmp");
fs.renameSync(target + ".tmp", target);
console.log(`prebuild: ${path.relative(root, target)} (${(fs.statSync(target).size / 1e6).toFixed(1)} MB, CUDA ${cuda})`);
