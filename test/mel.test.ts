// The one TypeScript mel scale (lib/audio/mel.ts) agrees with the model's
// native front end (native/core/logmel.cpp): the TS log-mel (viz/spectrogram,
// built on melFilterbank) gives the same per-bin means as the addon's
// logmelStats on the same audio; plus the HTK scale's known values.
import { expect } from 'chai';
import { hzToMel, melBins, melCentres, melFilterbank, melPoints, melToHz } from '../lib/audio/mel';
import { CmacModel } from '../lib/model';
import { logMel } from '../lib/viz/spectrogram';
import { rng, tinyConfig } from './helpers';

describe('mel scale (lib/audio/mel.ts)', function () {
  this.timeout(120000);

  it('HTK values: 0 Hz = 0 mel, 1000 Hz ~ 1000 mel, melToHz inverts hzToMel; centres are the inner filter points', () => {
    expect(hzToMel(0)).to.equal(0);
    expect(hzToMel(1000)).to.be.closeTo(999.9855, 1e-3);
    expect(hzToMel(8000)).to.be.closeTo(2840.023, 1e-3);
    for (const f of [0, 50, 440, 3000, 7999]) expect(melToHz(hzToMel(f))).to.be.closeTo(f, 1e-9);
    const p = melPoints(8, 0, 8000);
    expect(p).to.have.length(10);
    expect(p[0]).to.be.closeTo(0, 1e-12);
    expect(p[9]).to.be.closeTo(8000, 1e-9);
    expect(melCentres(8)).to.deep.equal(p.slice(1, -1));
    const [a, b] = melBins(150, 7000, 64);
    expect(a).to.be.at.least(0);
    expect(b).to.be.at.most(63);
  });

  it('the filterbank is torchaudio melscale_fbanks (htk, no norm): triangles peaking at 1 on their centres', () => {
    // 513 STFT bins at 16 kHz, 64 filters over 0-8000 Hz: bin spacing 15.625 Hz.
    const fb = melFilterbank(513, 0, 8000, 64, 16000);
    expect(fb).to.have.length(513);
    const centres = melCentres(64, 0, 8000);
    for (const m of [0, 10, 40, 63]) {
      const f = Math.round(centres[m] / 15.625);
      const col = fb.map((row) => row[m]);
      expect(Math.max(...col), `filter ${m}`).to.be.within(0.5, 1);
      expect(col.indexOf(Math.max(...col)), `filter ${m} peak`).to.be.within(f - 1, f + 1);
      expect(col.every((w) => w >= 0)).to.equal(true);
    }
  });

  for (const logmel of [
    { sampleRate: 16000, nFft: 1024, winLength: 400, hopLength: 160, nMels: 64, fMin: 0, fMax: 8000 },
    { sampleRate: 16000, nFft: 512, winLength: 512, hopLength: 128, nMels: 40, fMin: 60, fMax: 7000 },
  ]) {
    it(`TS log-mel = the addon's log-mel per bin (nFft ${logmel.nFft}, ${logmel.nMels} mels, ${logmel.fMin}-${logmel.fMax} Hz)`, async () => {
      // One second of tones + noise, so every bin has energy well above log's 1e-6.
      const n = logmel.sampleRate;
      const r = rng(7);
      const pcm = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const t = i / logmel.sampleRate;
        pcm[i] = 0.3 * Math.sin(2 * Math.PI * 440 * t) + 0.2 * Math.sin(2 * Math.PI * 2500 * t) + 0.05 * (r() * 2 - 1);
      }
      const model = await CmacModel.create(tinyConfig({ logmel }));
      try {
        const stats = await model.logmelStats({ data: pcm, shape: [1, n], dtype: 'float32' });
        const ts = logMel(pcm, logmel);
        expect(ts.nMels).to.equal(logmel.nMels);
        let worst = 0;
        for (let m = 0; m < ts.nMels; m++) {
          let s = 0;
          for (let t = 0; t < ts.frames; t++) s += ts.data[m * ts.frames + t];
          worst = Math.max(worst, Math.abs(s / ts.frames - stats.mean.data[m]));
        }
        expect(worst, `largest per-bin mean difference of log-mel`).to.be.below(1e-3);
      } finally {
        model.dispose();
      }
    });
  }
});
