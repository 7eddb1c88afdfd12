declare module "node-gyp-build" {
  /** Loads the addon for this platform from prebuilds/ or build/Release under `dir`. */
  function load(dir: string): unknown;
  export default load;
}
