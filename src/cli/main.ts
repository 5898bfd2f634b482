/**
 * The command line: `spp-extract [inputs…]` (extract.ts), `info` (info.ts), `merge` (merge.ts), `fit-pca` (fit-pca.ts),
 * `help [command]`, --help, --version. Options, their checks and --help come from the options
 * table (src/core/options.ts). The commands are imported when they run, so --help, --version and
 * merge load no model runtime (tfjs, ONNX Runtime) and no image decoder.
 */
import { statSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { UsageError } from '../core/invalid.js';
import { toolVersion } from '../core/version.js';
import type { CommandName } from '../core/options.js';
import { checkCommandLine } from '../core/resolve.js';
import { printable, printableLines } from '../core/printable.js';
import { OutputError } from '../output/errors.js';
import { startedEarly } from './early.js';
import { EXIT } from './exit.js';
import { helpAfter, helpPointer } from './help.js';
import { installInterruptHandler, isStopping } from './interrupt.js';
import { openFilesAdvice } from './open-files.js';
import { addTableOptions, unsetEmptyEnvironment } from './options.js';

export { EXIT } from './exit.js';

/** The commands whose options come from the table. */
const TABLE_COMMANDS: ReadonlySet<string> = new Set<CommandName>(['extract', 'info', 'merge', 'fit-pca']);

type Raw = Record<string, unknown>;

/** Settings subcommands inherit are copied when they are created: set them first. */
function configure(cmd: Command): Command {
  return cmd
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(printableLines(s)),
      // commander's "error: …", prefixed as every other error of the tool.
      outputError: (s, write) => write(`spp-extract: ${s}`),
    })
    .showHelpAfterError(`(${helpPointer(cmd)} lists the options)`);
}

export function buildProgram(setExit: (code: number) => void): Command {
  const program = configure(new Command('spp-extract'))
    .description('Fixed-length image descriptors: pretrained MobileNet + spatial pyramid pooling → .npy / JSON / JSONL')
    .usage('[options] [inputs...]\n       spp-extract info [options]\n       spp-extract merge <shards...> -o <out>\n       spp-extract fit-pca <inputs...> --dim <k> -o <proj.npz>\n       spp-extract models [list | pull [ids...] | path <ids...>]')
    .argument('[inputs...]', 'image files, folders (recursive), globs, or - for paths on stdin')
    .version(toolVersion(), '-V, --version', 'print the version')
    .helpCommand('help [command]', 'show the help of a command (info, merge, fit-pca, models)')
    // Options after `info` belong to info, not to the extract command sharing their names.
    .enablePositionalOptions();
  addTableOptions(program, 'extract')
    .addHelpText('after', helpAfter('extract'))
    .action(async (inputs: string[], raw: Raw) => {
      // The inference worker boots (20–40 ms) while the extract command's code loads.
      const [{ extractCommand }] = await Promise.all([import('./extract.js'), prestart(raw)]);
      setExit(await extractCommand(inputs, raw));
    });

  const info = configure(program.command('info'))
    .description('print the engine, model, input range, layer, channels, feature map size and descriptor length');
  addTableOptions(info, 'info')
    .addHelpText('after', helpAfter('info'))
    .action(async (raw: Raw) => setExit(await (await import('./info.js')).infoCommand(raw)));

  const merge = configure(program.command('merge'))
    .description('merge --shard outputs (.npy + manifests, .jsonl or .json) into what one run over all inputs writes')
    .argument('<shards...>', 'the shard outputs, .npy, .jsonl or .json (globs are expanded)');
  addTableOptions(merge, 'merge')
    .addHelpText('after', helpAfter('merge'))
    .action(async (shards: string[], raw: Raw) => setExit(await (await import('./merge.js')).mergeCommand(shards, raw)));

  const fitPca = configure(program.command('fit-pca'))
    .description('learn a projection (centre, PCA, optional whitening, L2) that makes descriptors ~1/100 the size: apply it with --pca')
    .argument('<inputs...>', 'images (files, folders, globs, - for paths on stdin), or spp-extract .npy outputs');
  addTableOptions(fitPca, 'fit-pca')
    .addHelpText('after', helpAfter('fit-pca'))
    .action(async (inputs: string[], raw: Raw) => setExit(await (await import('./fit-pca.js')).fitPcaCommand(inputs, raw)));

  const models = configure(program.command('models'))
    .description('list the registry and the model cache; pull models into the cache ahead of offline runs; print a cached model\'s folder')
    .usage('[options] [list | pull [ids...] | path <ids...>]')
    .argument('[action]', 'list (default), pull (download and convert; default: the default model) or path')
    .argument('[ids...]', 'registry ids (or model.json URLs)');
  addTableOptions(models, 'models')
    .addHelpText('after', helpAfter('models'))
    .action(async (action: string | undefined, ids: string[], raw: Raw) => setExit(await (await import('./models.js')).modelsCommand(action, ids, raw)));
  return program;
}

let prestarted = false;

/** Starts the ONNX engine's worker early when the options say it will be used; checks come later. */
async function prestart(raw: Raw): Promise<void> {
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const engine = text(raw.engine);
  if (engine !== undefined && engine !== 'auto' && engine !== 'onnx' && engine !== 'tfjs') return;
  const { prestartEngine } = await import('../backbone/load.js');
  prestarted = true;
  await prestartEngine({ engine, backend: text(raw.backend) as never, model: text(raw.model) });
}

/** A worker started early that no load took (the run was refused first) is closed, never torn down mid-boot. */
async function closePrestarted(): Promise<void> {
  if (!prestarted && !startedEarly()) return;
  const { discardPrestartedWorker } = await import('../backbone/onnx/worker-client.js');
  await discardPrestartedWorker();
}

/** Whether an interrupted run of `-o target` left temp files a --resume would finish (nothing written: no). */
async function resumableStateOf(target: string): Promise<boolean> {
  const { outputTempFiles } = await import('../output/index.js');
  const formats = ['npy', 'json', 'jsonl'] as const;
  return formats.some((f) => outputTempFiles(target, f).some((p) => statSync(p, { throwIfNoEntry: false })?.isFile() === true));
}

async function exitCodeFor(err: unknown, running: Command): Promise<number> {
  const pointer = helpPointer(running);
  if (err instanceof CommanderError) {
    // Help and --version exit 0; usage without arguments 1; commander printed its own errors.
    return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? err.exitCode : EXIT.fatal;
  }
  if (err instanceof OutputError && err.target === '-' && err.code === 'EPIPE') return EXIT.brokenPipe;
  // A signal cut the run short and said so in its own line.
  if (isStopping()) return EXIT.interrupted;
  let msg = ((err as Error).message ?? String(err)).split('\n')[0];
  // Too few file descriptors: which limit and how to raise it, not the module or file it hit.
  const advice = openFilesAdvice(err);
  if (advice) msg = err instanceof OutputError ? `${msg}; ${advice}` : advice;
  // A FIFO or device written into (-o /dev/full) has nothing to resume.
  const streamed = err instanceof OutputError && (err.target === '-' || !(statSync(err.target, { throwIfNoEntry: false })?.isFile() ?? true));
  // Only extraction resumes, and only a run that wrote something (not one refused at its lock or first file).
  if (err instanceof OutputError && !streamed && !running.parent && (await resumableStateOf(err.target))) {
    msg += '; what is on disk is kept: fix the cause, then finish with --resume';
  }
  process.stderr.write(`spp-extract: error: ${printable(msg)}\n`);
  // A mistake in the call, not a failure of the run: say where the options are described.
  if (err instanceof UsageError) process.stderr.write(`(${pointer} lists the options)\n`);
  return EXIT.fatal;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  // bin installed it already; main() called on its own (tests, embedding) installs it for the call.
  const uninstall = installInterruptHandler();
  let code: number = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  let running: Command = program;
  program.hook('preAction', (_program, command) => {
    running = command;
    // Values, then options that contradict each other (only those given on the command line), before any command runs.
    const name = command.parent ? command.name() : 'extract';
    if (TABLE_COMMANDS.has(name)) unsetEmptyEnvironment(command, name as CommandName);
    if (TABLE_COMMANDS.has(name)) checkCommandLine(command.opts(), name as CommandName, (attr) => command.getOptionValueSource(attr) === 'cli');
  });
  // `help extract` is the main command's help.
  const args = argv[2] === 'help' && argv[3] === 'extract' ? [...argv.slice(0, 2), '--help'] : argv;
  // `help foo`: commander would print the main help (134 lines, exit 0) without saying foo is no command.
  const commands = ['extract', ...program.commands.map((c) => c.name())];
  if (argv[2] === 'help' && argv[3] !== undefined && !commands.includes(argv[3]) && argv[3] !== 'help') {
    process.stderr.write(`spp-extract: error: unknown command '${printable(argv[3])}' (the commands: ${commands.join(', ')})\n(spp-extract --help lists the options)\n`);
    uninstall();
    return EXIT.fatal;
  }
  try {
    // Nothing asked, in a terminal: the usage, not "-o is required".
    if (args.length <= 2 && process.stdout.isTTY) program.help({ error: true });
    await program.parseAsync(args);
  } catch (err) {
    return await exitCodeFor(err, running);
  } finally {
    await closePrestarted();
    uninstall();
  }
  return code;
}
export { systemReason } from '../output/errors.js';
