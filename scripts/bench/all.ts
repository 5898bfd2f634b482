/**
 * `npm run bench`: the start-up, throughput and region benchmarks in turn, each in its own process,
 * with the same arguments: `npm run bench -- --quick` (or `--rounds N`) reaches all three (npm
 * would hand them to the last command of a chained script only). Start-up has no --quick: it gets
 * 5 rounds then.
 *
 *   node dist/scripts/bench/all.js [--rounds N] [--quick]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO } from './common.js';

const { values: opt } = parseArgs({ options: { rounds: { type: 'string' }, quick: { type: 'boolean', default: false } }, strict: true });
const rounds = opt.rounds ? ['--rounds', opt.rounds] : [];
const quick = opt.quick ? ['--quick'] : [];
const steps: [string, string[]][] = [
  ['startup.js', opt.rounds ? rounds : opt.quick ? ['--rounds', '5'] : []],
  ['throughput.js', [...rounds, ...quick]],
  ['regions.js', [...rounds, ...quick]],
];
let failed = 0;
for (const [script, args] of steps) {
  const r = spawnSync(process.execPath, [join(REPO, 'dist', 'scripts', 'bench', script), ...args], { stdio: 'inherit', cwd: REPO });
  if (r.status !== 0) failed++;
  console.log('');
}
process.exitCode = failed > 0 ? 1 : 0;
