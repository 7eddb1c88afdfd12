#!/usr/bin/env node
// The fastdiff command line: demo, doctor, build.
import { spawnSync } from "node:child_process";
import { runDemo } from "./demo";

const HELP = `fastdiff <command>

  demo [--iterations N]   train a small MLP denoiser on a 2-D point cloud, printing the loss
  doctor [--json]         CPU features, kernel ISA, threads, CUDA devices, memory
  build                   compile the native addon from source (cmake-js; FASTDIFF_CUDA=auto|on|off)
  help                    this text
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(argv: string[]): Promise<number> {
  const [command = "help", ...args] = argv;
  switch (command) {
    case "demo": {
      const iterations = Number(flag(args, "--iterations") ?? 1500);
      if (!Number.isInteger(iterations) || iterations < 1) throw new Error("--iterations must be a positive integer");
      await runDemo({ iterations });
      return 0;
    }
    case "doctor": {
      const { devices, memory } = await import("./index");
      const info = { ...devices(), memory: memory(), node: process.versions.node, napi: process.versions.napi };
      if (args.includes("--json")) console.log(JSON.stringify(info, null, 2));
      else {
        const c = info.cpu;
        console.log(`CPU      ${c.brand}`);
        console.log(`kernels  ${c.activeIsa} (best ${c.bestIsa}); threads ${c.threads}; ${c.synchronous ? "synchronous (FASTDIFF_SYNC)" : "stream-ordered"}`);
        console.log(`features ${Object.entries(c.features).filter(([, v]) => v).map(([k]) => k).join(" ")}`);
        console.log(`CUDA     ${info.cuda.available ? info.cuda.devices.map((d) => `${d.name} (sm ${d.computeCapability})`).join(", ") : info.cuda.reason}`);
        console.log(`node     ${info.node}, N-API ${info.napi}`);
      }
      return 0;
    }
    case "build": {
      const root = require("node:path").resolve(__dirname, "..");
      const cuda = process.env.FASTDIFF_CUDA ?? "auto";
      // cmake-js comes from the project's devDependencies or, in an installed package, from npx.
      const r = spawnSync("npx", ["--yes", "cmake-js@7", "compile", `--CDFASTDIFF_CUDA=${cuda}`], { cwd: root, stdio: "inherit" });
      return r.status ?? 1;
    }
    case "help":
    case "--help":
      console.log(HELP);
      return 0;
    default:
      console.error(`unknown command '${command}'\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error & { code?: string }) => {
    console.error(`fastdiff: ${err.code ? `${err.code}: ` : ""}${err.message}`);
    process.exit(1);
  },
);
