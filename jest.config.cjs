/** Tests run the TypeScript sources (lib/) through SWC against the built addon. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/gpu/"],
  setupFilesAfterEnv: ["<rootDir>/test/setup-defaults.ts"],
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2022" } }] },
  testTimeout: 120000,
};
