/**
 * `towerlab text`: text retrieval on a BEIR folder — BM25, a dual encoder (bag of embeddings or a small
 * transformer over hashed n-grams) trained on the train qrels with optional corpus pre-training and BM25 hard
 * negatives, and their RRF ensemble; prints NDCG@10 / Recall@100 / MRR@10 on the test qrels. With --rerank,
 * also retrieve → LCE rerank (text/rerank-stage.ts) with the reranker trained on held-out train queries.
 */
import { Command, Option } from 'commander';
import type { BackendChoice } from '../compute/index.ts';
import { defaultBm25Options } from '../text/bm25.ts';
import { defaultDualEncoder, defaultTowerOptim, runBm25Experiment, runTextExperiment } from '../text/experiment.ts';
import { defaultTextLce, type FirstStage } from '../text/rerank-stage.ts';
import type { TextMetrics } from '../text/metrics.ts';
import { defaultTokenizerOptions } from '../text/tokenize.ts';
import { defaultTextTrain, type PretrainKind } from '../text/train.ts';
import { UserError } from '../util/errors.ts';
import { loadRecipe, type Recipe } from '../recipe/schema.ts';
import { parseList, parseNum, requireInt, requirePositive } from './options.ts';
import { printJsonLast } from './output.ts';
import { trainingWarningLine, noLearningJson } from '../train/no-learning.ts';




export function registerTextCommand(program: Command): void {
  const d = defaultDualEncoder;
  const t = defaultTextTrain;
  program
    .command('text')
    .description('text retrieval on a BEIR folder: BM25 vs a trained dual encoder vs their ensemble (NDCG@10, Recall@100, MRR@10 on the test qrels)')
    .requiredOption('--beir <dir>', 'BEIR folder: corpus.jsonl[.gz], queries.jsonl, qrels/train.tsv, qrels/test.tsv')
    .addOption(new Option('--tower <kind>', 'dual-encoder tower').choices(['boe', 'transformer']).default(d.tower))
    .option('--separate-towers', 'separate query and document towers (default: one shared tower)')
    .option('--dim <n>', 'embedding size', parseNum('--dim'), d.dim)
    .option('--proj <n>', 'bag of embeddings: dense layer after pooling (output size; 0 = none)', parseNum('--proj'), d.proj)
    .addOption(new Option('--pooling <kind>', 'bag of embeddings: sum / n or sum / √n').choices(['mean', 'sqrt']).default(d.pooling))
    .option('--blocks <n>', 'transformer blocks', parseNum('--blocks'), d.blocks)
    .option('--heads <n>', 'transformer attention heads', parseNum('--heads'), d.heads)
    .option('--window <n>', 'document chunk window (words); a document scores the max over its chunks', parseNum('--window'), d.window)
    .option('--stride <n>', 'chunk stride (words)', parseNum('--stride'), d.stride)
    .option('--buckets <n>', 'hash buckets of the n-gram vocabulary', parseNum('--buckets'), defaultTokenizerOptions.buckets)
    .option('--no-bigrams', 'no word bigrams in the bag of features')
    .option('--char-ngrams <list>', 'character n-gram lengths added to the bag, e.g. 3,4', '')
    .option('--no-stopwords', 'keep English stop words')
    .option('--no-stem', 'no plural stripping (S-stemmer)')
    .option('--bm25-only', 'BM25 alone: train no dual encoder (also what --epochs 0 with --pretrain none means)')
    .option('--epochs <n>', 'supervised epochs over the train qrels pairs', parseNum('--epochs'), t.epochs)
    .addOption(new Option('--pretrain <kind>', 'self-supervised pre-training on the corpus: inverse cloze task, title → abstract, or none').choices(['ict', 'title', 'none']).default(t.pretrain))
    .option('--pretrain-epochs <n>', 'pre-training epochs (one pair per document each)', parseNum('--pretrain-epochs'), t.pretrainEpochs)
    .option('--recipe <file>', 'negatives recipe (JSON, the schema of every recipe: sources incl. mined from "bm25", logQ, queue, same-tower, FN masking, losses, batch samplers); default: recipes/text.json shaped by --temperature / --hard-negatives / --hard-pool')
    .option('--hard-negatives <n>', 'default recipe: BM25-mined hard negatives per query per step (0 = in-batch only)', parseNum('--hard-negatives'), t.hardNegatives)
    .option('--hard-pool <n>', 'default recipe: BM25 top non-positives each query draws its hard negatives from', parseNum('--hard-pool'), t.hardPool)
    .option('--val-holdout <x>', 'hold out this fraction of the train queries for validation (NDCG@10) with --eval-every / --patience (0 = no validation)', parseNum('--val-holdout'), 0)
    .option('--eval-every <n>', 'validate every n supervised epochs (with --val-holdout)', parseNum('--eval-every'), 1)
    .option('--patience <n>', 'stop after n validations without improvement; the best epoch\'s weights are kept (0 = never stop early)', parseNum('--patience'), 0)
    .option('--checkpoint <dir>', 'write an atomic training checkpoint here after every epoch (weights, optimiser and recipe state)')
    .option('--resume', 'continue from --checkpoint')
    .option('--batch-size <n>', 'pairs per step', parseNum('--batch-size'), t.batchSize)
    .option('--temperature <x>', 'default recipe: softmax temperature', parseNum('--temperature'), t.temperature)
    .option('--lr-sparse <x>', 'lazy Adam learning rate of the hashed embedding rows', parseNum('--lr-sparse'), defaultTowerOptim.lrSparse)
    .option('--lr-dense <x>', 'Adam learning rate of dense weights', parseNum('--lr-dense'), defaultTowerOptim.lrDense)
    .option('--k1 <x>', 'BM25 k1', parseNum('--k1'), defaultBm25Options.k1)
    .option('--b <x>', 'BM25 b', parseNum('--b'), defaultBm25Options.b)
    .option('--rrf-k <n>', 'reciprocal-rank fusion constant', parseNum('--rrf-k'), 60)
    .option('--seed <n>', 'seed of initialisation and batch order', parseNum('--seed'), d.seed)
    .option('--rerank', 'retrieve → rerank: hold out a slice of the train queries, train an LCE reranker on it over the first stage, report both stages on test')
    .addOption(new Option('--rerank-over <stage>', 'first stage to rerank: the dual encoder, or its soft-vote fusion with BM25').choices(['dense', 'soft-vote']).default('dense'))
    .option('--rerank-k <n>', 'candidates per query from the first stage', parseNum('--rerank-k'), 100)
    .option('--rerank-holdout <x>', 'fraction of the train queries held out from the dual encoder to train the reranker on', parseNum('--rerank-holdout'), 0.2)
    .option('--rerank-group <n>', 'reranker training group: 1 positive + n − 1 negatives from the first stage', parseNum('--rerank-group'), defaultTextLce.G)
    .option('--rerank-epochs <n>', 'reranker training epochs', parseNum('--rerank-epochs'), defaultTextLce.epochs)
    .option('--out <dir>', 'save the trained dual encoder here (atomic); with --rerank, the reranker to <dir>-reranker')
    .option('--no-progress', 'no per-epoch log on stderr')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((o, cmd: Command) => textCommand(o, cmd));
}

export interface TextCommandOptions {
  /** BM25 alone: no dual encoder is trained. */
  bm25Only?: boolean;
  beir: string;
  tower: 'boe' | 'transformer';
  separateTowers?: boolean;
  dim: number;
  proj: number;
  pooling: 'mean' | 'sqrt';
  blocks: number;
  heads: number;
  window: number;
  stride: number;
  buckets: number;
  bigrams: boolean;
  charNgrams: string;
  stopwords: boolean;
  stem: boolean;
  epochs: number;
  pretrain: PretrainKind;
  pretrainEpochs: number;
  hardNegatives: number;
  hardPool: number;
  recipe?: string;
  valHoldout: number;
  evalEvery: number;
  patience: number;
  checkpoint?: string;
  resume?: boolean;
  batchSize: number;
  temperature: number;
  lrSparse: number;
  lrDense: number;
  k1: number;
  b: number;
  rrfK: number;
  seed: number;
  rerank?: boolean;
  rerankOver: FirstStage;
  rerankK: number;
  rerankHoldout: number;
  rerankGroup: number;
  rerankEpochs: number;
  out?: string;
  progress: boolean;
  backend: BackendChoice;
  json?: boolean;
}

async function textCommand(o: TextCommandOptions, cmd?: Command): Promise<void> {
  let recipe: Recipe | undefined;
  if (o.recipe) {
    // The shortcut flags shape the default recipe only: with a recipe file they would be silently ignored.
    for (const [key, flag] of [['hardNegatives', '--hard-negatives'], ['hardPool', '--hard-pool'], ['temperature', '--temperature']] as const) {
      if (cmd?.getOptionValueSource(key) === 'cli') throw new UserError(`${flag}: shapes the default text recipe; with --recipe set it in the recipe file`);
    }
    recipe = loadRecipe(o.recipe);
  }
  if (o.resume && !o.checkpoint) throw new UserError('--resume: needs --checkpoint <dir>');
  const valHoldout = o.valHoldout ?? 0;
  const charNgrams = o.charNgrams ? parseList('--char-ngrams', o.charNgrams) : [];
  const window = requireInt('--window', o.window, 1);
  const stride = requireInt('--stride', o.stride, 1);
  if (stride > window) throw new UserError(`--stride: must be <= --window (${window}), got ${stride}`);
  const heads = requireInt('--heads', o.heads, 1);
  const dim = requireInt('--dim', o.dim, 1);
  const tokenizer = { buckets: requireInt('--buckets', o.buckets, 1), bigrams: o.bigrams !== false, charNgrams, stopwords: o.stopwords !== false, stem: o.stem !== false };
  // An encoder with neither training nor pre-training is random: its row would only mislead.
  if (o.bm25Only || (requireInt('--epochs', o.epochs, 0) === 0 && o.pretrain === 'none')) return bm25Only(o, tokenizer);
  if (o.tower === 'transformer' && dim % heads !== 0) throw new UserError(`--dim: ${dim} is not a multiple of --heads ${heads}`);
  const r = await runTextExperiment({
    beir: o.beir,
    model: {
      tower: o.tower,
      shared: !o.separateTowers,
      dim,
      proj: requireInt('--proj', o.proj, 0),
      pooling: o.pooling,
      heads,
      blocks: requireInt('--blocks', o.blocks, 1),
      window,
      stride,
      queryMaxLen: defaultDualEncoder.queryMaxLen,
      tokenizer,
      seed: o.seed,
    },
    optim: { lrSparse: requirePositive('--lr-sparse', o.lrSparse), lrDense: requirePositive('--lr-dense', o.lrDense) },
    train: {
      epochs: requireInt('--epochs', o.epochs, 0),
      batchSize: requireInt('--batch-size', o.batchSize, 2),
      temperature: requirePositive('--temperature', o.temperature),
      pretrain: o.pretrain as PretrainKind,
      pretrainEpochs: requireInt('--pretrain-epochs', o.pretrainEpochs, 0),
      hardNegatives: requireInt('--hard-negatives', o.hardNegatives, 0),
      hardPool: requireInt('--hard-pool', o.hardPool, 1),
      seed: o.seed,
      evalEvery: valHoldout > 0 ? requireInt('--eval-every', o.evalEvery ?? 1, 1) : 0,
      patience: requireInt('--patience', o.patience ?? 0, 0),
      checkpointDir: o.checkpoint ?? null,
      resume: !!o.resume,
    },
    recipe,
    validation: valHoldout > 0 ? { holdout: valHoldout, splitSeed: o.seed } : undefined,
    bm25: { k1: o.k1, b: o.b },
    rrfK: requirePositive('--rrf-k', o.rrfK),
    weights: [1, 1],
    backend: o.backend,
    rerank: o.rerank
      ? {
          over: o.rerankOver,
          K: requireInt('--rerank-k', o.rerankK, 1),
          holdout: o.rerankHoldout,
          splitSeed: 1,
          lce: { ...defaultTextLce, G: requireInt('--rerank-group', o.rerankGroup, 2), epochs: requireInt('--rerank-epochs', o.rerankEpochs, 1) },
        }
      : undefined,
    out: o.out,
    log: o.progress === false ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  const m = r.metrics;
  const row = (name: string, x: TextMetrics) => `${name.padEnd(22)} ${x['ndcg@10'].toFixed(4).padStart(8)} ${x['recall@100'].toFixed(4).padStart(10)} ${x['mrr@10'].toFixed(4).padStart(8)}`;
  const lines = [
    `data: ${r.data.dir}: ${r.data.docs} docs (${r.data.chunks} chunks of ≤ ${window} words), ${r.data.queries} queries; ${r.data.trainQueries} train queries, ${r.data.testQueries} test queries`,
    `dual encoder: ${o.tower} (dim ${dim}${o.tower === 'transformer' ? `, ${o.blocks} block(s), ${heads} head(s)` : `, ${o.pooling} pooling`}), ${o.separateTowers ? 'separate' : 'shared'} towers; ` +
      `pre-training ${o.pretrain}${o.pretrain !== 'none' ? ` × ${o.pretrainEpochs}` : ''}, ${o.epochs} epochs, ${r.train.steps} steps in ${r.train.seconds.toFixed(1)} s; recipe '${r.train.recipe}' (backend ${r.backend})` +
      (r.train.validation.length ? `; validation NDCG@10 best ${Math.max(...r.train.validation.map((v) => v.ndcg10)).toFixed(4)} @ epoch ${r.train.bestEpoch}${r.train.stoppedEarly ? ' (stopped early)' : ''}` : ''),
    `test (${r.data.testQueries} queries):`,
    `${'method'.padEnd(22)} ${'NDCG@10'.padStart(8)} ${'Recall@100'.padStart(10)} ${'MRR@10'.padStart(8)}`,
    row('BM25', m.bm25),
    row('dual encoder', m.dense),
    row('ensemble (RRF)', m.ensemble),
    row('ensemble (soft vote)', m.softVote),
  ];
  const rr = r.rerank;
  if (rr) {
    const over = rr.over === 'dense' ? 'dual encoder' : 'soft vote';
    lines.push(
      `retrieve → rerank (LCE over the ${over} top-${rr.K}; dual encoder trained on ${rr.fitQueries} train queries, reranker on ${rr.heldOutQueries} held out; loss ${rr.losses[0].toFixed(3)} → ${rr.losses[rr.losses.length - 1].toFixed(3)}):`,
      row('first stage', rr.retrieve),
      row('reranked (LCE)', rr.rerank),
    );
  }
  if (o.out) lines.push(`model saved to ${o.out}`);
  if (rr?.out) lines.push(`reranker saved to ${rr.out}`);
  process.stdout.write(lines.join('\n') + '\n');
  const warning = trainingWarningLine(r.train.collapse, r.train.noLearning, 'ndcg@10', o.patience && o.patience > 0 ? o.patience : 3);
  if (warning) process.stderr.write(warning + '\n');
  if (o.json) printJsonLast({ metrics: m, collapsed: r.train.collapse.collapsed, ...noLearningJson(r.train.noLearning), rerank: rr ?? null, train: r.train, seconds: r.seconds, data: r.data, backend: r.backend, out: o.out ?? null });
}

function bm25Only(o: TextCommandOptions, tokenizer: typeof defaultTokenizerOptions): void {
  if (o.rerank) throw new UserError('--rerank needs a dual encoder first stage; drop --bm25-only (or give --epochs > 0)');
  if (o.out) throw new UserError('--out: BM25 alone saves no model; drop --bm25-only (or give --epochs > 0)');
  const r = runBm25Experiment({ beir: o.beir, tokenizer, bm25: { k1: o.k1, b: o.b } });
  const m = r.metrics.bm25;
  const lines = [
    `data: ${r.data.dir}: ${r.data.docs} docs, ${r.data.queries} queries; ${r.data.testQueries} test queries`,
    'BM25 only (no dual encoder trained)',
    `test (${r.data.testQueries} queries):`,
    `${'method'.padEnd(22)} ${'NDCG@10'.padStart(8)} ${'Recall@100'.padStart(10)} ${'MRR@10'.padStart(8)}`,
    `${'BM25'.padEnd(22)} ${m['ndcg@10'].toFixed(4).padStart(8)} ${m['recall@100'].toFixed(4).padStart(10)} ${m['mrr@10'].toFixed(4).padStart(8)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (o.json) printJsonLast({ metrics: r.metrics, bm25Only: true, seconds: r.seconds, data: r.data, out: null });
}
