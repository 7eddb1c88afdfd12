// Datasets: MNIST, PNG image folders and 2-D toy sets (with exact denoisers), all in-memory ArrayDatasets,
// and seeded batch iteration over them.
import { mnist } from "./mnist";
import { imageFolder } from "./image-folder";
import { toy2d } from "./toy2d";

export { ArrayDataset, BatchLoader, permutation, type Batch, type Dataset, type LoaderOptions, type LoaderPosition } from "./dataset";
export { mnist, type MnistOptions, type MnistSplit } from "./mnist";
export { imageFolder, resizeCenterCrop, ImageFolderDataset, type ImageFolderOptions, type SkippedFile } from "./image-folder";
export {
  toy2d, toyNames, TOY_SIGMA_MAX, ToyDataset, GaussianMixture, MixtureDenoiser,
  type ToyName, type ToyOptions, type MixtureSpec, type MixtureDenoiserOptions,
} from "./toy2d";

/** The dataset constructors under one name: `datasets.mnist()`, `datasets.imageFolder(dir, …)`, `datasets.toy2d(name)`. */
export const datasets = { mnist, imageFolder, toy2d } as const;
