// metrics.jsonl: one JSON line per step, appended as it happens.
import * as fs from 'fs';

/** One line of metrics.jsonl. */
export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  lossCon: number;
  lossV: number;
  lossA: number;
  /** In-batch retrieval accuracy read off the L_con logits (chance 1/batchSize). */
  retrievalAcc: number;
  lr: number;
  lambdaScale: number;
  /** The step the lambda ramp started at (loss.rampStart; null while 'auto' has not started it). */
  rampStart: number | null;
  gradNorm: number;
  stepMs: number;
  dataMs: number;
  clipsPerSec: number;
  skippedSamples: number;
  finite: boolean;
  stepped: boolean;
}

export class MetricsLog {
  constructor(private readonly file: string) {}

  append(m: StepMetrics): void {
    fs.appendFileSync(this.file, JSON.stringify(m) + '\n');
  }

  /** Drops lines past `step` (after a resume from an earlier checkpoint). */
  truncateAfter(step: number): void {
    if (!fs.existsSync(this.file)) return;
    const kept = read(this.file).filter((m) => m.step <= step);
    fs.writeFileSync(this.file, kept.map((m) => JSON.stringify(m) + '\n').join(''));
  }
}

/** Reads metrics.jsonl, skipping a torn last line (a crash mid-append). */
export function read(file: string): StepMetrics[] {
  if (!fs.existsSync(file)) return [];
  const out: StepMetrics[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* torn line */
    }
  }
  return out;
}
