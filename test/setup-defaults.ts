// Every test file starts from the engine's settings as the process began, as if it ran in a process of its own:
// jest runs the files one after another in one process (in band on 2 cores), where these settings are
// process-wide, so a file that changed one and did not restore it would change the next file's conditions.
// The settings of the first file (the library's defaults, or what FASTDIFF_* set) are kept on `process`.
import * as fd from "../lib";

type Settings = {
  isa: fd.Isa;
  threads: number;
  precision: fd.MatmulPrecision;
  conv: fd.ConvAlgorithm;
  readWait: fd.ReadWait;
};
const holder = process as unknown as { fastdiffTestSettings?: Settings };
const initial = (holder.fastdiffTestSettings ??= {
  isa: fd.getIsa(),
  threads: fd.getNumThreads(),
  precision: fd.getMatmulPrecision(),
  conv: fd.getConvAlgorithm(),
  readWait: fd.getReadWait(),
});
fd.setIsa(initial.isa);
fd.setNumThreads(initial.threads);
fd.setMatmulPrecision(initial.precision);
fd.setConvAlgorithm(initial.conv);
fd.setReadWait(initial.readWait);
fd.setProfiling(process.env.FASTDIFF_PROFILE === "1");
