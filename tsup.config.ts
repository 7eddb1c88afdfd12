import { defineConfig } from "tsup";

export default defineConfig([
  {
    entry: { index: "lib/index.ts" },
    format: ["cjs", "esm"],
    dts: true,
    shims: true,
    target: "node18",
    sourcemap: true,
    clean: true,
    outExtension: ({ format }) => ({ js: format === "cjs" ? ".cjs" : ".mjs" }),
  },
  {
    entry: { cli: "lib/cli.ts" },
    format: ["cjs"],
    shims: true,
    target: "node18",
    outExtension: () => ({ js: ".cjs" }),
  },
]);
