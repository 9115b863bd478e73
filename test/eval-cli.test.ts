// `cmac eval` and `cmac localize` end to end on a tiny trained checkpoint and
// real files: every evaluator's JSON, the HTML report,
// an audio-only (ESC-50 layout) probe, and localize's PNGs, MP4 and maps.
import { expect } from 'chai';
import { CommanderError } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { probe, runFfmpeg, synthesize } from '../lib/data';
import { registerEval } from '../lib/cli/eval';
import { registerLocalize } from '../lib/cli/localize';
import { readSafetensors } from '../lib/safetensors';
import { train } from '../lib/train';
import { resolveCheckpoint } from '../lib/eval';
import { isSelfContained } from '../lib/report';
import { blank, decodePng } from '../lib/viz';
import { overlayFrame } from '../lib/viz/localize';
import { runCommand, tmpDir } from './helpers';

const cli = (args: string[]): Promise<string> =>
  runCommand((p) => {
    registerEval(p);
    registerLocalize(p);
  }, args);

describe('eval: cmac eval and cmac localize end to end', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-eval-cli-');
  const data = path.join(dir, 'synth');
  const run = path.join(dir, 'run');

  before(async () => {
    await synthesize({ out: data, clips: 24, seed: 5, size: 64, fps: 8, seconds: 2.5, splits: [0.5, 0.25, 0.25] });
    await train(
      { preset: 'tiny', seed: 1, data: { source: data, batchSize: 4 }, train: { steps: 3, checkpointEvery: 3, runDir: run } },
      { progress: false },
    );
  });

  it('finds a checkpoint from a run folder, its checkpoints/ folder or a file', () => {
    const a = resolveCheckpoint(run);
    expect(a.step).to.equal(3);
    expect(resolveCheckpoint(path.join(run, 'checkpoints')).weights).to.equal(a.weights);
    expect(resolveCheckpoint(a.weights).state).to.equal(a.state);
    expect(() => resolveCheckpoint(path.join(dir, 'nope'))).to.throw(/does not exist/);
  });

  it('eval all: retrieval, localisation and frequency as JSON and a self-contained report', async () => {
    const json = path.join(dir, 'all.json'),
      report = path.join(dir, 'all.html');
    const text = await cli(['eval', 'all', '--checkpoint', run, '--data', data, '--json', json, '--report', report, '--batch-size', '4']);
    expect(text)
      .to.include('localisation (EZ-VSL protocol) on 6 clips')
      .and.include('frequency grounding')
      .and.include('retrieval on 6 clips');
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.step).to.equal(3);
    expect(r.retrieval.audioToVideo.n).to.equal(6);
    for (const k of ['ciou50', 'auc', 'meanCiou', 'pointing', 'mass', 'chance']) expect(r.localization.betaV[k]).to.be.a('number');
    expect(r.localization.perClip.alphaV.length).to.equal(6);
    expect(r.localization.protocol).to.equal('ezvsl');
    expect(r.frequency.bands).to.equal(8);
    expect(r.frequency.nMels).to.equal(64);
    expect(isSelfContained(report)).to.equal(true);
    const html = fs.readFileSync(report, 'utf8');
    expect(html).to.include('Localisation examples').and.include('Frequency maps').and.include('Embeddings').and.include('<svg');
  });

  it('eval localization / retrieval / frequency run alone', async () => {
    expect(await cli(['eval', 'localization', '--checkpoint', run, '--data', data, '--split', 'val'])).to.include('beta_v (audio-guided)');
    expect(await cli(['eval', 'localization', '--checkpoint', run, '--data', data, '--split', 'val', '--protocol', 'lvs'])).to.include(
      'localisation (LVS protocol)',
    );
    let bad: unknown;
    try {
      await cli(['eval', 'localization', '--checkpoint', run, '--data', data, '--protocol', 'vgg']);
    } catch (e) {
      bad = e;
    }
    expect(bad).to.be.instanceOf(CommanderError);
    expect((bad as Error).message).to.match(/--protocol must be 'ezvsl' .* or 'lvs' .*got 'vgg'/);
    expect(await cli(['eval', 'retrieval', '--checkpoint', run, '--data', data])).to.include('audio -> video');
    expect(await cli(['eval', 'frequency', '--checkpoint', run, '--data', data])).to.include('alpha_a (no video)');
    let usage: unknown;
    try {
      await cli(['eval', 'localization', '--data', data]);
    } catch (e) {
      usage = e;
    }
    expect(usage).to.be.instanceOf(CommanderError);
  });

  it('eval linear-probe on the synthetic manifest (video and audio features)', async () => {
    const json = path.join(dir, 'probe.json');
    const text = await cli(['eval', 'linear-probe', '--checkpoint', run, '--data', data, '--json', json]);
    expect(text).to.include('video (featV)').and.include('audio (featA)');
    const r = JSON.parse(fs.readFileSync(json, 'utf8')).linearProbe;
    expect(r.folds.length).to.equal(1);
    expect(r.folds[0].video.nTrain).to.equal(12);
    expect(r.folds[0].video.nTest).to.equal(6);
    expect(r.folds[0].video.val.length).to.equal(11);
    expect(r.video.mean).to.be.within(0, 1);
  });

  it('eval linear-probe on an ESC-50 layout: audio-only .wav files through the audio encoder', async () => {
    const esc = path.join(dir, 'esc50');
    fs.mkdirSync(path.join(esc, 'audio'), { recursive: true });
    fs.mkdirSync(path.join(esc, 'meta'), { recursive: true });
    const rows = ['filename,fold,target,category,esc10,src_file,take'];
    for (let f = 1; f <= 5; f++) {
      for (let t = 0; t < 2; t++) {
        const name = `${f}-${t}-A-${t}.wav`;
        await runFfmpeg([
          '-y',
          '-f',
          'lavfi',
          '-i',
          `sine=frequency=${t ? 3000 : 300}:duration=2.5:sample_rate=44100`,
          path.join(esc, 'audio', name),
        ]);
        rows.push(`${name},${f},${t},${t ? 'high' : 'low'},False,1,A`);
      }
    }
    fs.writeFileSync(path.join(esc, 'meta', 'esc50.csv'), rows.join('\n') + '\n');
    const json = path.join(dir, 'esc.json');
    const text = await cli(['eval', 'linear-probe', '--checkpoint', run, '--data', esc, '--folds', '1,2', '--json', json]);
    expect(text).to.include('audio (featA)').and.not.include('video (featV)');
    const r = JSON.parse(fs.readFileSync(json, 'utf8')).linearProbe;
    expect(r.folds.map((f: { name: string }) => f.name)).to.deep.equal(['fold 1', 'fold 2']);
    expect(r.folds[0].audio.nTrain).to.equal(6);
    expect(r.folds[0].audio.nTest).to.equal(2);
    expect(r.audio.mean).to.equal(1); // a 300 Hz tone against a 3 kHz tone
  });

  it('localize: overlay PNG per clip frame, an MP4 with the audio, the frequency map and the maps as safetensors', async () => {
    const video = path.join(
      data,
      'test',
      fs.readdirSync(path.join(data, 'test')).find((f) => f.endsWith('.mp4'))!,
    );
    const out = path.join(dir, 'loc');
    const text = await cli(['localize', '--checkpoint', run, '--video', video, '--out', out, '--max-clips', '3', '--size', '96']);
    expect(text).to.include('3 clips of 0.5 s: 12 overlay frames');
    const frames = fs.readdirSync(path.join(out, 'frames')).sort();
    expect(frames.length).to.equal(12);
    expect(frames[0]).to.equal('clip-0000-f0.png');
    const png = decodePng(fs.readFileSync(path.join(out, 'frames', frames[0])));
    // Two titled 96-px overlays, a colour bar and the time stamp below them.
    const layout = overlayFrame(blank(96, 96), { alphaV: new Float32Array(64), betaV: new Float32Array(64) }, 8, 8, 96, 0);
    expect([png.width, png.height]).to.deep.equal([layout.width, layout.height]);
    expect(png.width).to.be.greaterThan(96 * 2 + 4);
    expect(png.height).to.be.greaterThan(96);
    const info = await probe(path.join(out, 'overlay.mp4'));
    expect([info.video!.width, info.video!.height]).to.deep.equal([png.width, png.height]);
    expect(info.audio).to.not.equal(undefined);
    expect(info.duration).to.be.closeTo(1.5, 0.15);
    expect(fs.existsSync(path.join(out, 'frequency.png'))).to.equal(true);
    const maps = await readSafetensors(path.join(out, 'maps.safetensors'));
    expect(maps.tensors.alphaV.shape).to.deep.equal([3, 8, 8]);
    expect(maps.tensors.betaA.shape).to.deep.equal([3, 8]);
    expect(Array.from(maps.tensors.clipStart.data as Float32Array)).to.deep.equal([0, 0.5, 1]);
    const idx = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
    expect(idx.clips).to.equal(3);
  });
});
