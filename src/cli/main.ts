/**
 * The `towerlab` command line: a thin layer that parses options, calls the library, prints results.
 * User errors print one line and exit 2; anything else is reported as an internal error (stack only
 * with TOWERLAB_DEBUG=1).
 */
import { Command, Option } from 'commander';
import { UserError } from '../util/errors.ts';
import { compareCommand } from './compare.ts';
import { evalCommand } from './eval.ts';
import { registerExportCommand } from './export.ts';
import { registerIndexCommand } from './index-cmd.ts';
import { registerMineCommand } from './mine.ts';
import { registerRerankCommand } from './rerank.ts';
import { registerServeCommand } from './serve.ts';
import { registerSeqCommand } from './seq.ts';
import { registerTextCommand } from './text.ts';
import { recommendCommand } from './recommend.ts';
import { addDataOptions, addModelOptions, addSplitOptions, addTrainOptions, parseNum } from './options.ts';
import { trainCommand } from './train.ts';
import { tuneCommand } from './tune.ts';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('towerlab')
    .description('Train, evaluate and serve two-tower retrieval models with composable negative sampling.')
    .showHelpAfterError('(run with --help for usage)');

  const train = program.command('train').description('train a two-tower model, evaluate it on the test split and save it');
  addDataOptions(train);
  addSplitOptions(train);
  addModelOptions(train);
  addTrainOptions(train);
  train
    .option('--recipe <file>', 'negatives recipe (JSON); default: in-batch softmax with logQ correction and accidental-hit masking (recipes/in-batch-logq.json)')
    .option('--options <file>', 'train options as JSON (e.g. best-options.json from tune); flags given here win')
    .option('--out <dir>', 'output directory (model, checkpoint, training log)')
    .option('--resume', 'continue from the checkpoint in --out')
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((opts, cmd) => trainCommand(opts, cmd));

  const tune = program
    .command('tune')
    .description('search recipe fields and train options (quasi-random + successive halving on validation), then test the best once');
  addDataOptions(tune);
  addSplitOptions(tune);
  tune
    .requiredOption('--space <file>', 'search space (JSON: base recipe and options, parameters with log/linear/int ranges or choices, rung schedule; see docs/collaborative-filtering.md)')
    .requiredOption('--budget <n>', "number of configurations ('40trials') or training time ('2h', '90m')")
    .option('--seed <n>', 'seed of the search points and of every trial', parseNum('--seed'), 1)
    .option('--out <dir>', 'output directory (tune-state.json, trials/, results.json, best-recipe.json, best-options.json, index.html)', 'tune')
    .option('--resume', 'continue the search in --out after an interruption')
    .option('--skip-test', 'do not evaluate the chosen configuration on the test data')
    .option('--json', 'print the results as one JSON object on the last line of stdout')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .action((opts, cmd) => tuneCommand(opts, cmd));

  const ev = program.command('eval').description('evaluate a saved model on the test split of a data set');
  ev.requiredOption('--model <dir>', 'a model directory written by train (the model/ folder or the run folder)');
  addDataOptions(ev, false);
  addSplitOptions(ev, false);
  ev.option('--ks <list>', 'cut-offs', '10,20,50')
    .option('--sampled <list>', "sequence models: also GNNO's sampled protocol, the target vs N uniform non-interacted items, per N (default 1000)")
    .option('--exclude-history', "sequence models: remove each user's history items from the full ranking (default: exclude nothing)")
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .action((opts) => evalCommand(opts));

  const compare = program.command('compare').description('train several recipes over several seeds on the same split and write an HTML report with charts');
  addDataOptions(compare);
  addSplitOptions(compare);
  addModelOptions(compare);
  addTrainOptions(compare);
  compare
    .requiredOption('--recipes <files...>', 'recipe files (JSON) to compare')
    .option('--seeds <n|list>', "number of seeds (--seed, --seed+1, ...) or a comma-separated list", '3')
    .option('--k <n>', 'cut-off shown in the report (added to --ks if missing)', '20')
    .option('--out <dir>', 'report directory (results.json, index.html)', 'report')
    .option('--json', "print the summary as one JSON object on the last line of stdout")
    .action((opts) => compareCommand(opts));

  program
    .command('recommend')
    .description('top-K items for a user of a saved model')
    .requiredOption('--model <dir>', 'a model directory written by train')
    .option('--user <id>', 'user id as it appears in the data (required unless --history)')
    .option('--history <items>', 'sequence models: comma-separated item ids, oldest first; recommends the next item')
    .option('--k <n>', 'number of items', '10')
    .option('--include-seen', "do not exclude the user's training items")
    .option('--json', 'print the result as JSON')
    .action((opts) => recommendCommand(opts));

  registerExportCommand(program);
  registerIndexCommand(program);
  registerMineCommand(program);
  registerRerankCommand(program);
  registerServeCommand(program);
  registerSeqCommand(program);
  registerTextCommand(program);

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`towerlab: error: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    const err = e as Error;
    process.stderr.write(`towerlab: internal error: ${err?.message ?? String(e)}\n`);
    if (process.env.TOWERLAB_DEBUG) process.stderr.write(`${err?.stack}\n`);
    else process.stderr.write('(set TOWERLAB_DEBUG=1 for the stack trace; please report it)\n');
    process.exitCode = 1;
  }
}
