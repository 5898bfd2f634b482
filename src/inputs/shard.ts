import type { RegionPlan } from './boxes.js';
import type { InputFailure } from './expand.js';
import type { TarMemberRef } from './tar.js';

/**
 * One image of the run: its position in the full input list, its path (with its bytes when they are
 * not UTF-8: core/path-text.ts), what the walk could not read of it, and (region runs) what to describe in it.
 */
export interface WorkItem {
  index: number; path: string; pathBytes?: Buffer; failure?: InputFailure; regions?: RegionPlan; member?: TarMemberRef; sample?: TarMemberRef;
  /** Every input listed from an archive (its members and the listing's failures): the archive as given. */
  archive?: string;
}

/** The fields every record of an item starts with: its position and its path (with its bytes, when not UTF-8). */
export function recordRef(item: WorkItem): { index: number; path: string; pathBytes?: Buffer; key?: string } {
  return { index: item.index, path: item.path, ...(item.pathBytes ? { pathBytes: item.pathBytes } : {}), ...(item.member ? { key: item.member.key } : item.sample ? { key: item.sample.key } : {}) };
}

/** k of n, 1-based. */
export interface ShardSpec { index: number; count: number }

/** A non-negative integer environment variable, or undefined when unset; anything else is an error. */
function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  if (!/^\s*\d+\s*$/.test(v)) throw new Error(`--shard auto: ${name} must be a non-negative integer, got '${v}'`);
  return Number(v);
}

/**
 * k (1-based) of a Slurm array task: the task's position in the array, so `--array=0-3`, `--array=1-4`
 * and `--array=0-15:4` all give 1..4. Slurm has no variable for N, so when it says how many tasks the
 * array holds (SLURM_ARRAY_TASK_COUNT) that must be N: an array of another size (e.g. one task resubmitted
 * on its own with `sbatch --array=3`, which would be task 1 of 1) would silently process the wrong shard.
 */
function slurmIndex(env: NodeJS.ProcessEnv, value: string, count: number): number {
  const id = envInt(env, 'SLURM_ARRAY_TASK_ID')!;
  const min = envInt(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
  const step = envInt(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
  const tasks = envInt(env, 'SLURM_ARRAY_TASK_COUNT');
  if (tasks !== undefined && tasks !== count) {
    throw new Error(`--shard ${value}: this Slurm array has ${tasks} task(s) (SLURM_ARRAY_TASK_COUNT), not ${count}; ` +
      `submit exactly ${count} (e.g. --array=1-${count}, also to redo one: scontrol requeue JOBID_TASK), or give --shard K/${count}`);
  }
  if (step < 1 || id < min || (id - min) % step !== 0) {
    throw new Error(`--shard ${value}: SLURM_ARRAY_TASK_ID ${id} is not in an array from ${min} by ${step}; use --array=A-B or give --shard K/${count}`);
  }
  return (id - min) / step + 1;
}

/**
 * `--shard k/n`, or `--shard auto/n` taking k from the array-job environment: Slurm
 * (SLURM_ARRAY_TASK_ID relative to SLURM_ARRAY_TASK_MIN and _STEP, so --array=0-3 and 1-4 both work)
 * or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 0-based).
 */
export function parseShard(value: string, env: NodeJS.ProcessEnv = process.env): ShardSpec {
  const m = /^(auto|\d+)\/(\d+)$/.exec(value.trim());
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1)) throw new Error(`--shard must be K/N (1 ≤ K ≤ N) or auto/N, got '${value}'`);
  let index: number;
  if (m[1] !== 'auto') {
    index = Number(m[1]);
  } else if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    index = slurmIndex(env, value, count);
  } else if (env.JOB_COMPLETION_INDEX !== undefined) {
    index = envInt(env, 'JOB_COMPLETION_INDEX')! + 1;
  } else {
    throw new Error(`--shard ${value}: 'auto' needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment`);
  }
  if (!Number.isInteger(index) || index < 1 || index > count) {
    throw new Error(`--shard must be K/N with 1 ≤ K ≤ N, got '${value}' (K = ${index})`);
  }
  return { index, count };
}

/** FNV-1a over the path's bytes (UTF-8 text): a file's shard depends on its path alone, so adding files moves no others. */
export function shardOfPath(path: string | Buffer, count: number): number {
  let h = 0x811c9dc5;
  for (const byte of typeof path === 'string' ? Buffer.from(path, 'utf8') : path) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h % count) + 1;
}

export function selectShard(items: readonly WorkItem[], spec: ShardSpec | undefined): WorkItem[] {
  if (!spec || spec.count === 1) return [...items];
  // A tar member goes with its archive: each task reads whole archives (the unit of an array job).
  return items.filter((it) => shardOfPath(it.archive ?? it.pathBytes ?? it.path, spec.count) === spec.index);
}
