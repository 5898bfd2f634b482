import type { WorkItem } from './run.js';

/** k of n, 1-based. */
export interface ShardSpec { index: number; count: number }

/**
 * `--shard k/n`, or `--shard auto/n` taking k from the array-job environment: Slurm
 * (SLURM_ARRAY_TASK_ID relative to SLURM_ARRAY_TASK_MIN, so --array=0-3 and 1-4 both work) or a
 * Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 0-based).
 */
export function parseShard(value: string, env: NodeJS.ProcessEnv = process.env): ShardSpec {
  const m = /^(auto|\d+)\/(\d+)$/.exec(value.trim());
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1)) throw new Error(`--shard must be K/N (1 ≤ K ≤ N) or auto/N, got '${value}'`);
  let index: number;
  if (m[1] !== 'auto') {
    index = Number(m[1]);
  } else if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    index = Number(env.SLURM_ARRAY_TASK_ID) - Number(env.SLURM_ARRAY_TASK_MIN ?? 0) + 1;
  } else if (env.JOB_COMPLETION_INDEX !== undefined) {
    index = Number(env.JOB_COMPLETION_INDEX) + 1;
  } else {
    throw new Error(`--shard ${value}: 'auto' needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment`);
  }
  if (!Number.isInteger(index) || index < 1 || index > count) {
    throw new Error(`--shard must be K/N with 1 ≤ K ≤ N, got '${value}' (K = ${index})`);
  }
  return { index, count };
}

/** FNV-1a over the UTF-8 path: a file's shard depends on its path alone, so adding files moves no others. */
export function shardOfPath(path: string, count: number): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(path, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h % count) + 1;
}

export function selectShard(items: readonly WorkItem[], spec: ShardSpec | undefined): WorkItem[] {
  if (!spec || spec.count === 1) return [...items];
  return items.filter((it) => shardOfPath(it.path, spec.count) === spec.index);
}
