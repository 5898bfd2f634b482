/** The text --help adds after the options: examples and the exit codes, per command. */
import type { Command } from 'commander';
import { EXIT, EXIT_MEANINGS } from './exit.js';
import type { CommandName } from '../core/options.js';

const EXAMPLES: Record<CommandName, readonly (readonly [string, string])[]> = {
  extract: [
    ['spp-extract images/ -o feats.npy', 'every image under images/, recursively (+ feats.manifest.jsonl)'],
    ['spp-extract a.jpg b.png -o feats.json', 'named files, one JSON object'],
    ["find data -name '*.jpg' | spp-extract - -o -", 'paths from stdin, JSONL on stdout'],
    ["spp-extract 'data/**/*.jpg' --levels 6,3,2,1 -o feats.npy", "a quoted glob; the paper's pyramid"],
    ['spp-extract images/ -o feats.npy --resume', 'finish an interrupted run'],
    ['spp-extract images/ --shard auto/8 -o feats-{shard}.npy', 'one shard of an array job'],
    ['spp-extract --boxes boxes.jsonl --size 448 -o regions.npy', 'one row per box, one forward pass per image'],
    ['spp-extract images/ --grid 2x2 --size 448 -o quadrants.npy', 'the whole image, then its 4 quadrants (at --size 448 a quadrant spans 7×7 cells, as a whole image does at 224)'],
    ['spp-extract images/ --pca proj.npz -o small.npy', 'K values per image, projected with a fit-pca projection'],
    ['spp-extract images/ --pca-dim 128 -o small.npy', 'fit a 128-component projection on these images first (small.pca.npz), then extract'],
    ['spp-extract help info', 'help for a command (info, merge, fit-pca)'],
  ],
  info: [
    ['spp-extract info', 'the default model, layer and descriptor length'],
    ['spp-extract info --model DIR --layers', 'a local model and its candidate layers'],
    ['spp-extract info --levels 6,3,2,1 --json', 'machine-readable'],
  ],
  merge: [
    ['spp-extract merge feats-*.npy -o feats.npy', 'what one run over all inputs writes, byte for byte'],
    ["spp-extract merge 'feats-*.npy' -o feats.npy", 'globs are expanded as for extraction'],
    ['spp-extract merge feats-*.jsonl -o feats.jsonl', '.jsonl and .json shards too: -o in the same format'],
  ],
  'fit-pca': [
    ['spp-extract fit-pca images/ --dim 128 -o proj.npz', 'learn a 128-component projection from (a sample of) the images'],
    ['spp-extract fit-pca feats.npy --dim 64 --whiten -o proj.npz', 'from descriptors already extracted (options read from the manifest)'],
    ['spp-extract images/ --pca proj.npz -o small.npy', 'then extract with it (every task of an array job gets the same file)'],
  ],
  models: [
    ['spp-extract models', 'the registry: id, family, α, input range, size, whether cached and where'],
    ['spp-extract models pull mobilenet_v2_1.00 mobilenet_v1_0.25', 'download and convert into the cache (on a login node with internet, before jobs run offline)'],
    ['spp-extract models path mobilenet_v2_1.00', 'the cached folder (model.json and its weights)'],
    ['SPP_EXTRACT_MODEL_MIRROR=https://mirror.example/spp spp-extract models pull', 'the default model from <base>/<id>/model.json instead of the internet'],
  ],
};

/** The exit codes a command can end with, where its meaning differs from the main command's. */
const EXIT_CODES: Record<CommandName, readonly (number | readonly [number, string])[]> = {
  extract: EXIT_MEANINGS.map(([code]) => code),
  info: [EXIT.ok, [EXIT.fatal, 'fatal: bad option, or the model failed to load']],
  merge: [EXIT.ok, [EXIT.fatal, 'fatal: shards incomplete, made with other options or not covering every input; output refused or failed'],
    [EXIT.someFailed, 'merged, but the shards recorded failed inputs']],
  'fit-pca': [EXIT.ok, [EXIT.fatal, 'fatal: bad option, no usable rows, or the projection could not be written'],
    [EXIT.someFailed, 'written, but some sampled inputs failed (each named on stderr) and were left out'],
    [EXIT.interrupted, 'interrupted (Ctrl-C / SIGTERM): nothing written']],
  models: [[EXIT.ok, 'done: listed, every model pulled, every path printed'], [EXIT.fatal, 'a model could not be downloaded (each named on stderr), or is not cached (models path)']],
};

/** Words wrapped at `width` columns, continuation lines indented by `indent`. */
function wrap(text: string, indent: number, width = 80): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

export function helpAfter(command: CommandName): string {
  const examples = EXAMPLES[command].map(([cmd, what]) => `  ${cmd}\n      ${wrap(what, 6)}`).join('\n');
  const codes = EXIT_CODES[command].map((c) => (typeof c === 'number' ? EXIT_MEANINGS.find(([code]) => code === c)! : c));
  const width = Math.max(...codes.map(([code]) => String(code).length));
  const exits = codes.map(([code, meaning]) => `  ${String(code).padEnd(width)}  ${wrap(meaning, width + 4)}`).join('\n');
  return `\nExamples:\n${examples}\n\nExit codes:\n${exits}\n`;
}

/** Where a usage error points for the options of a command. */
export function helpPointer(cmd: Command): string {
  return cmd.parent ? `spp-extract help ${cmd.name()}` : 'spp-extract --help';
}
