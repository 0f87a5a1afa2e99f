/** The shape every benchmark returns and bench/results/*.json holds. */
import type { MachineInfo } from './machine.js';
import { median } from './stats.js';

/** One compared figure: the project and its peer measured in the same run. */
export interface Row {
  metric: string;
  unit: string;
  project: number;
  peer: number;
  /**
   * project / peer: the median of the per-repetition ratios (each repetition pairs one
   * project run with the peer run next to it), which cancels slow drifts of a shared machine.
   */
  ratio: number;
  /** Whether a lower or a higher value is better for the project. */
  better: 'lower' | 'higher';
  /** The target for the ratio, as text (e.g. "≤ 0.5"); empty when there is none. */
  goal: string;
  /** Whether the goal was met; null when there is none. */
  met: boolean | null;
  /** The per-repetition values behind the medians, for the record. */
  projectRuns?: number[];
  peerRuns?: number[];
}

export interface BenchResult {
  name: string;
  title: string;
  /** What the project side is and what the peer is, in a few words each. */
  project: string;
  peer: string;
  quick: boolean;
  params: Record<string, number | string | boolean>;
  rows: Row[];
  notes: string[];
  /** Wall-clock seconds the benchmark took. */
  seconds: number;
  /** The machine it ran on (set by the runner). */
  machine?: MachineInfo;
}

export interface ResultFile {
  machine: MachineInfo;
  results: BenchResult[];
}

export interface BenchOptions {
  quick: boolean;
  /** Progress lines go here (stderr), so the final table stays readable. */
  log: (line: string) => void;
}

/** Builds a row from paired per-repetition values; the figures are their medians. */
export function row(
  metric: string,
  unit: string,
  better: Row['better'],
  projectRuns: number[],
  peerRuns: number[],
  goal?: { text: string; test: (ratio: number) => boolean },
): Row {
  const pairs = Math.min(projectRuns.length, peerRuns.length);
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const a = projectRuns[i] ?? Number.NaN;
    const b = peerRuns[i] ?? Number.NaN;
    if (b !== 0) ratios.push(a / b);
  }
  const ratio = median(ratios);
  return {
    metric,
    unit,
    project: median(projectRuns),
    peer: median(peerRuns),
    ratio,
    better,
    goal: goal?.text ?? '',
    met: goal === undefined || !Number.isFinite(ratio) ? null : goal.test(ratio),
    projectRuns,
    peerRuns,
  };
}
