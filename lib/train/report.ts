// report.html of a training run: loss curves, throughput, config, data summary.
import type { CmacConfig } from '../config';
import type { LoaderStats } from '../data';
import { lineChart, ReportSection, settingsTables, table, writeReport } from '../report';
import { read } from './metrics';

/** Extra sections (evaluation) appended by later stages. */
export function trainingSections(cfg: CmacConfig, metricsFile: string, stats?: LoaderStats): ReportSection[] {
  const m = read(metricsFile);
  const s = (key: 'loss' | 'lossCon' | 'lossV' | 'lossA' | 'gradNorm' | 'lr' | 'clipsPerSec') =>
    m.map((x) => [x.step, x[key]] as [number, number]);
  const lastOf = m[m.length - 1];
  const skipped = stats ? Object.entries(stats.skipped).filter(([, n]) => n) : [];
  return [
    {
      title: 'Losses',
      html:
        '<p>One panel per term (each on its own y axis); the legend shows the values under the cursor.</p>' +
        lineChart([{ name: 'total', points: s('loss') }], { title: 'total loss' }) +
        lineChart([{ name: 'L_con', points: s('lossCon') }], { title: 'L_con (cross-modal contrastive)' }) +
        lineChart([{ name: 'L_v', points: s('lossV') }], { title: 'L_v (visual attention consistency)' }) +
        lineChart([{ name: 'L_a', points: s('lossA') }], { title: 'L_a (audio attention consistency)' }) +
        (lastOf
          ? table([
              ['last step', lastOf.step],
              ['loss', lastOf.loss.toPrecision(5)],
              ['L_con', lastOf.lossCon.toPrecision(5)],
              ['L_v', lastOf.lossV.toPrecision(5)],
              ['L_a', lastOf.lossA.toPrecision(5)],
            ])
          : ''),
    },
    {
      title: 'Optimisation',
      html:
        lineChart([{ name: 'grad norm', points: s('gradNorm') }], { logY: true, title: 'gradient norm' }) +
        lineChart([{ name: 'lr', points: s('lr') }], { title: 'learning rate' }),
    },
    { title: 'Throughput', html: lineChart([{ name: 'clips/s', points: s('clipsPerSec') }], { title: 'clips per second (data + step)' }) },
    {
      title: 'Data',
      html: stats
        ? table([
            ['clips', stats.clips],
            ['batches', stats.batches],
            ['skipped', skipped.length ? skipped.map(([r, n]) => `${r}: ${n}`).join(', ') : 'none'],
            ['decodes', stats.decodes],
            ['peak bytes held', stats.peakBytes],
          ])
        : '<p>(no loader statistics)</p>',
    },
    { title: 'Configuration', html: settingsTables(cfg as unknown as Record<string, unknown>) },
  ];
}

export function writeTrainingReport(
  file: string,
  cfg: CmacConfig,
  metricsFile: string,
  stats?: LoaderStats,
  extra: ReportSection[] = [],
): void {
  writeReport(file, `cmac run: ${cfg.preset} preset, loss ${cfg.loss.preset}`, [...trainingSections(cfg, metricsFile, stats), ...extra]);
}
