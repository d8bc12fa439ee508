/**
 * The package entry: `import { … } from 'towerlab'`. Built to dist/towerlab.js + .d.ts (scripts/build-lib.mjs).
 * Everything a library user may rely on is re-exported here, and only here; deeper modules are internal.
 * One section per area; add an export line to the section of your area rather than reordering others.
 */

// ── The library API: train / evaluate / load, in-memory data, trained models ──
export { train, evaluate, TrainedModel, defaultTrainConfig, defaultSplit, type TrainOptions, type EvaluateOptions } from './api/train.ts';
export { Model, load, type Query, type ItemInput, type UserFeatures, type UserFeatureValue, type Recommendation, type RecommendOptions } from './api/model.ts';
export { TextModel, loadTextModel, type TextPairs, type TextDocument, type TextTrainOptionsApi as TrainTextOptions } from './api/text-model.ts';
export { toInteractions, type InteractionData, type InteractionRow, type InteractionColumns, type FeatureRow, type FeatureValue, type Id } from './api/data.ts';

// ── Experiments: train → validate → test → save, as the CLI runs them ──
export { runExperiment, type ExperimentOptions, type ExperimentResult } from './train/experiment.ts';
export { runSeqExperiment, defaultSeqModel, type SeqExperimentOptions, type SeqExperimentResult, type SeqModelOptions } from './seq/experiment.ts';
export { runTextExperiment, defaultDualEncoder, defaultTowerOptim, type TextExperimentOptions, type TextExperimentResult } from './text/experiment.ts';
export { defaultTextTrain, textRecipe, trainText as trainTextPair, DEFAULT_TEXT_RECIPE_JSON, type TextTrainOptions, type TextTrainResult } from './text/train.ts';
export { TextEncoderPair, type TextBatchInput } from './text/text-pair.ts';
export { TextTrainingSet } from './text/training-set.ts';
export { train as runTrainingLoop, type TrainConfig, type TrainInputs, type TrainSummary } from './train/trainer.ts';

// ── Recipes (negatives: sources, corrections, loss, batch composition) ──
export { loadRecipe, parseRecipe, defaultRecipe, recipeSchema, type Recipe, type SourceSpec, type BatchSamplerSpec } from './recipe/schema.ts';

// ── Data ──
export { loadInteractions, type DataSpec } from './data/load.ts';
export { generateSynthetic, parseSyntheticSpec, type SyntheticOptions, type SyntheticInteractions } from './data/synthetic.ts';
export { splitInteractions, type SplitSpec } from './data/split.ts';
export { prepare, type Prepared } from './data/prepare.ts';
export { Vocab, type Interactions, type CategoricalFeature, type DenseFeature, type Split } from './data/types.ts';

// ── Models ──
export { buildModel, defaultModelOptions, type ModelOptions } from './model/build.ts';
export { TwoTowerModel, type ModelConfig } from './model/two-tower.ts';
export { saveModel, loadModel, type ModelArtifacts } from './model/saved-model.ts';
export { openModel } from './bundle/open.ts';

// ── ONNX export of the query tower (docs/onnx.md) ──
export { twoTowerOnnx, seqOnnx, textOnnx, writeOnnx, ONNX_FILE, type OnnxExport, type OnnxSpec } from './onnx/export.ts';

// ── Evaluation ──
export { evaluateRanking, embeddingScorer, popularityScorer, popularityBaseline, formatMetricsTable, METRIC_NAMES, type RankingOptions, type EvalResult, type Scorer } from './eval/index.ts';

// ── Compute backend ──
export { getBackend, type BackendChoice } from './compute/index.ts';
export type { Backend } from './compute/backend.ts';

// ── Interop: embeddings as Parquet, LanceDB as the item index (docs/interop.md) ──
export { exportEmbeddings, modelEmbeddings, writeEmbeddingsParquet, readEmbeddingsParquet, type ModelEmbeddings, type ParquetWriteResult } from './bundle/embeddings-parquet.ts';
export { writeLanceDir, LanceIndex, defaultLanceConfig, type LanceConfig, type LanceMeta, type LanceOpenOptions } from './index/lance-index.ts';

// ── Errors (one-line messages for bad input) ──
export { UserError, InputError } from './util/errors.ts';
