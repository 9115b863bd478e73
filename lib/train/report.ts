// report.html of a training run: loss curves, throughput, config, data summary.
import type { CmacConfig } from '../config';
import type { LoaderStats } from '../data';
import { lineChart, ReportSection, table, writeReport } from '../report';
import { read } from './metrics';

/** Extra sections (evaluation) appended by later stages. */
export function trainingSections(cfg: CmacConfig, metricsFile: string, stats?: LoaderStats): ReportSection[] {
  const m = read(metricsFile);
  const s = (key: 'loss' | 'lossCon' | 'lossV' | 'lossA' | 'gradNorm' | 'lr' | 'clipsPerSec') => m.map((x) => [x.step, x[key]] as [number, number]);
  const lastOf = m[m.length - 1];
  return [
    {
      title: 'Losses',
      html: lineChart([{ name: 'total', points: s('loss') }, { name: 'L_con', points: s('lossCon') }, { name: 'L_v', points: s('lossV') }, { name: 'L_a', points: s('lossA') }], { title: 'loss per step' }) +
        (lastOf ? table([['last step', lastOf.step], ['loss', lastOf.loss], ['L_con', lastOf.lossCon], ['L_v', lastOf.lossV], ['L_a', lastOf.lossA]]) : ''),
    },
    { title: 'Optimisation', html: lineChart([{ name: 'grad norm', points: s('gradNorm') }], { logY: true, title: 'gradient norm' }) + lineChart([{ name: 'lr', points: s('lr') }], { title: 'learning rate' }) },
    { title: 'Throughput', html: lineChart([{ name: 'clips/s', points: s('clipsPerSec') }], { title: 'clips per second (data + step)' }) },
    { title: 'Data', html: stats ? table([['clips', stats.clips], ['batches', stats.batches], ['skipped', stats.skipped], ['decodes', stats.decodes], ['peak bytes held', stats.peakBytes]]) : '<p>(no loader statistics)</p>' },
    { title: 'Configuration', html: `<pre>${JSON.stringify(cfg, null, 2).replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c] as string)}</pre>` },
  ];
}

export function writeTrainingReport(file: string, cfg: CmacConfig, metricsFile: string, stats?: LoaderStats, extra: ReportSection[] = []): void {
  writeReport(file, `cmac run: ${cfg.preset} preset, loss ${cfg.loss.preset}`, [...trainingSections(cfg, metricsFile, stats), ...extra]);
}
