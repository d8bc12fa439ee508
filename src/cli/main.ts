/**
 * The `towerlab` command line: a thin layer that parses options, calls the library, prints results.
 * User errors print one line and exit 2; anything else is reported as an internal error (stack only
 * with TOWERLAB_DEBUG=1).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
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
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError('(run with --help for usage)')
    // Usage errors (unknown command or option, missing value) are bad input: exit 2 as the README says, not
    // commander's 1. Set before the subcommands are made so they inherit it.
    .exitOverride();

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
    .option('--item-names <file[:column]>', 'name the items (saved with the model; recommend, export and serve show them): a table with an item id column and a name column, e.g. ml-100k.item:title')
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
    .option('--item-names <file[:column]>', 'item names for the report\'s most-recommended items, e.g. ml-100k.item:title')
    .option('--out <dir>', 'report directory (results.json, index.html)', 'report')
    .option('--json', "print the summary as one JSON object on the last line of stdout")
    .action((opts) => compareCommand(opts));

  program
    .command('recommend')
    .description('top-K items for a user of a saved model (or documents for a query text of a text model)')
    .requiredOption('--model <dir>', 'a model directory written by train, seq or text')
    .option('--user <id>', 'user id as it appears in the data (required unless --history)')
    .option('--history <items>', 'sequence models: comma-separated item ids, oldest first; recommends the next item')
    .option('--query <text>', 'text dual encoders (towerlab text): the query text; prints the best documents')
    .option('--corpus <dir>', 'text dual encoders: the BEIR folder to search (default: the documents saved with the model, else the folder it was trained on)')
    .option('--k <n>', 'number of items', '10')
    .option('--include-seen', "do not exclude the user's training items")
    .option('--item-names <file[:column]>', 'item names to print beside ids (default: the names saved with the model), e.g. ml-100k.item:title')
    .option('--json', 'print the result as JSON')
    .action((opts) => recommendCommand(opts));

  registerExportCommand(program);
  registerIndexCommand(program);
  registerMineCommand(program);
  registerRerankCommand(program);
  registerServeCommand(program);
  registerSeqCommand(program);
  registerTextCommand(program);

  normalizeDefaults(program);

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its message (or the asked-for help / version, which exit 0).
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
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

function packageVersion(): string {
  try {
    return String(JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

/**
 * One way of printing and parsing defaults across every command: an option taking a single number (`<n>`,
 * `<x>`, `<k>`) whose default was written as a string gets a number default and a parser that checks the value
 * (a bad number is a one-line error, exit 2); every other string default prints unquoted, so help reads
 * `(default: 10)` and `(default: 10,20,50)` alike instead of `(default: "10")` in some commands.
 */
export function normalizeDefaults(cmd: Command): void {
  for (const opt of cmd.options as Option[]) {
    if (typeof opt.defaultValue !== 'string' || opt.defaultValueDescription !== undefined) continue;
    const raw = opt.defaultValue;
    if (/<(n|x|k)>$/.test(opt.flags) && !opt.parseArg && !opt.variadic && raw.trim() !== '' && Number.isFinite(Number(raw))) {
      const flag = opt.long ?? opt.flags;
      opt.defaultValue = Number(raw);
      opt.argParser((v: string) => {
        const x = Number(v);
        if (v.trim() === '' || !Number.isFinite(x)) throw new UserError(`${flag}: '${v}' is not a number`);
        return x;
      });
    } else opt.defaultValueDescription = raw === '' ? 'none' : raw;
  }
  for (const sub of cmd.commands as Command[]) normalizeDefaults(sub);
}
