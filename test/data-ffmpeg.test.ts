// Decoding correctness with real ffmpeg on real files made here: pixels,
// frame timing, audio frequency, window padding, audio/video alignment and
// the augmentation filters.
import { expect } from 'chai';
import * as path from 'path';
import * as fs from 'fs';
import {
  decodeAudioFile,
  decodeClip,
  decodeClips,
  muxSoundtrack,
  planClip,
  probe,
  Prng,
  writeTestVideos,
  DataError,
  type ProbeInfo,
} from '../lib/data';
import { rejects, tmpDir } from './helpers';

const palette: [number, number, number][] = [
  [230, 20, 20],
  [20, 230, 20],
  [20, 20, 230],
  [230, 230, 20],
  [20, 230, 230],
  [230, 20, 230],
  [235, 235, 235],
  [20, 20, 20],
];
// Source: 24 fps, colour changes every 3 frames (1/8 s).
const colourOfSourceFrame = (f: number): [number, number, number] => palette[Math.floor(f / 3) % palette.length];

function meanColour(video: Uint8Array, frame: number, size: number, x0 = 0, y0 = 0, x1 = size, y1 = size): [number, number, number] {
  const s = [0, 0, 0];
  let n = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const k = ((frame * size + y) * size + x) * 3;
      s[0] += video[k];
      s[1] += video[k + 1];
      s[2] += video[k + 2];
      n++;
    }
  return [s[0] / n, s[1] / n, s[2] / n];
}

function closeTo(a: number[], b: number[], tol: number): boolean {
  return a.every((v, i) => Math.abs(v - b[i]) <= tol);
}

/** Frequency from zero crossings. */
function zeroCrossingHz(x: Float32Array, sr: number, from = 0, to = x.length): number {
  let c = 0;
  for (let i = from + 1; i < to; i++) if (x[i - 1] < 0 !== x[i] < 0) c++;
  return c / 2 / ((to - from) / sr);
}

function rms(x: Float32Array, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i] * x[i];
  return Math.sqrt(s / Math.max(1, to - from));
}

describe('data: ffmpeg decoding', function () {
  this.timeout(60000);
  const dir = tmpDir('cmac-data-ffmpeg-');
  const colours = path.join(dir, 'colours.mp4');
  const sync = path.join(dir, 'sync.mp4');
  const halves = path.join(dir, 'halves.mkv');
  let info: ProbeInfo;
  let syncInfo: ProbeInfo;

  before(async () => {
    await writeTestVideos([
      {
        out: colours,
        seconds: 3,
        fps: 24,
        width: 64,
        height: 48,
        colour: (_t, f) => colourOfSourceFrame(f),
        tone: 1000,
        sampleRate: 44100,
        amplitude: 0.4,
      },
      {
        out: sync,
        seconds: 4,
        fps: 25,
        width: 48,
        height: 48,
        colour: () => [60, 60, 60],
        flash: 2.0,
        click: 2.0,
        tone: 440,
        amplitude: 0.05,
      },
      { out: halves, seconds: 1, fps: 10, width: 64, height: 48, pixel: (x) => (x < 32 ? [220, 30, 30] : [30, 30, 220]), tone: null },
    ]);
    info = await probe(colours);
    syncInfo = await probe(sync);
  });

  it('probes streams, duration, fps and audio rate', async () => {
    expect(info.duration).to.be.closeTo(3, 0.1);
    expect(info.video).to.include({ codec: 'h264', width: 64, height: 48 });
    expect(info.video!.fps).to.be.closeTo(24, 0.01);
    expect(info.audio).to.include({ codec: 'aac', sampleRate: 44100, channels: 1 });
    const h = await probe(halves);
    expect(h.audio).to.equal(undefined);
    expect(h.format).to.match(/matroska/);
  });

  it('decodes the frame on screen at start + k/fps, with the right colours', async () => {
    for (const [start, fps] of [
      [0.9, 8],
      [1.03, 16],
      [0, 8],
    ] as const) {
      const frames = 8;
      const size = 32;
      const d = await decodeClip(colours, info, { start, frames, fps, width: size, height: size });
      expect(d.video.length).to.equal(frames * size * size * 3);
      expect(d.audio).to.equal(null);
      for (let k = 0; k < frames; k++) {
        const sourceFrame = Math.floor((start + k / fps) * 24 + 1e-9);
        const want = colourOfSourceFrame(sourceFrame);
        const got = meanColour(d.video, k, size, 4, 4, 28, 28);
        expect(
          closeTo(got, want, 24),
          `start ${start} fps ${fps} frame ${k}: got ${got.map(Math.round)}, want ${want} (source frame ${sourceFrame})`,
        ).to.equal(true);
      }
    }
  });

  it('decodes the audio window at 16 kHz mono with the right frequency and level', async () => {
    const d = await decodeClip(colours, info, {
      start: 1,
      frames: 1,
      fps: 8,
      width: 16,
      height: 16,
      audio: { start: 0.5, samples: 32000, sampleRate: 16000 },
    });
    expect(d.audio).to.be.instanceOf(Float32Array);
    expect(d.audio!.length).to.equal(32000);
    expect(d.audioPad).to.deep.equal({ front: 0, back: 0 });
    expect(zeroCrossingHz(d.audio!, 16000, 1000, 31000)).to.be.closeTo(1000, 10);
    expect(rms(d.audio!, 1000, 31000)).to.be.closeTo(0.4 / Math.SQRT2, 0.03);
  });

  it('zero pads audio windows that run past the file start or end', async () => {
    const a = await decodeClip(colours, info, {
      start: 0,
      frames: 1,
      fps: 8,
      width: 16,
      height: 16,
      audio: { start: -0.5, samples: 32000, sampleRate: 16000 },
    });
    expect(a.audioPad.front).to.equal(8000);
    expect(rms(a.audio!, 0, 8000)).to.equal(0);
    expect(rms(a.audio!, 8400, 32000)).to.be.greaterThan(0.2);
    const b = await decodeClip(colours, info, {
      start: 2,
      frames: 1,
      fps: 8,
      width: 16,
      height: 16,
      audio: { start: 2, samples: 32000, sampleRate: 16000 },
    });
    // 1 s of audio remains (3 s file), then zeros: allow the encoder's padding frame.
    expect(b.audioPad.back).to.be.within(15000, 16100);
    expect(rms(b.audio!, 32000 - 14000, 32000)).to.equal(0);
    expect(rms(b.audio!, 200, 15000)).to.be.greaterThan(0.2);
  });

  it('puts a flash and a click at the same instant in the video clip and the audio window', async () => {
    // Eval centre clip of the 4 s file: 8 frames at 16 fps from 1.75 s; audio 2 s window from 1.0 s.
    const g = { frames: 8, fps: 16, size: 32, audioSeconds: 2, sampleRate: 16000 };
    const plan = planClip(syncInfo, g, { mode: 'eval' });
    expect(plan.start).to.be.closeTo(1.75, 1e-9);
    expect(plan.audioStart).to.be.closeTo(1.0, 1e-9);
    const d = await decodeClip(sync, syncInfo, {
      start: plan.start,
      frames: g.frames,
      fps: g.fps,
      width: g.size,
      height: g.size,
      crop: plan.crop,
      audio: { start: plan.audioStart, samples: 32000, sampleRate: 16000 },
    });
    const brightness = Array.from({ length: g.frames }, (_, k) => meanColour(d.video, k, g.size)[0]);
    const flashFrame = brightness.indexOf(Math.max(...brightness));
    expect(flashFrame).to.equal(4);
    expect(brightness.filter((b) => b > 200)).to.have.length(1);
    let onset = -1;
    for (let i = 0; i < d.audio!.length; i++)
      if (Math.abs(d.audio![i]) > 0.5) {
        onset = i;
        break;
      }
    // Both at 2.0 s: video frame 4 of the clip (1.75 + 4/16) and audio sample (2.0 - 1.0) * 16000.
    const videoTime = plan.start + flashFrame / g.fps;
    const audioTime = plan.audioStart + onset / 16000;
    expect(onset).to.be.closeTo(16000, 48);
    expect(Math.abs(videoTime - audioTime)).to.be.lessThan(0.004);
  });

  it('crops, flips, jitters and scales in the filter graph', async () => {
    const h = await probe(halves);
    const size = 16;
    const plain = await decodeClip(halves, h, {
      start: 0.2,
      frames: 2,
      fps: 10,
      width: size,
      height: size,
      crop: { x: 0, y: 0, w: 64, h: 48 },
    });
    const flipped = await decodeClip(halves, h, {
      start: 0.2,
      frames: 2,
      fps: 10,
      width: size,
      height: size,
      crop: { x: 0, y: 0, w: 64, h: 48 },
      flip: true,
    });
    expect(closeTo(meanColour(plain.video, 0, size, 0, 0, 6, size), [220, 30, 30], 25)).to.equal(true);
    expect(closeTo(meanColour(plain.video, 0, size, 10, 0, 16, size), [30, 30, 220], 25)).to.equal(true);
    expect(closeTo(meanColour(flipped.video, 0, size, 0, 0, 6, size), [30, 30, 220], 25)).to.equal(true);
    const left = await decodeClip(halves, h, {
      start: 0.2,
      frames: 1,
      fps: 10,
      width: size,
      height: size,
      crop: { x: 0, y: 0, w: 30, h: 48 },
    });
    expect(closeTo(meanColour(left.video, 0, size), [220, 30, 30], 25)).to.equal(true);
    const dark = await decodeClip(halves, h, {
      start: 0.2,
      frames: 1,
      fps: 10,
      width: size,
      height: size,
      crop: { x: 0, y: 0, w: 30, h: 48 },
      jitter: { brightness: -0.3, contrast: 1, saturation: 1 },
    });
    const m0 = meanColour(left.video, 0, size);
    const m1 = meanColour(dark.video, 0, size);
    expect(m1[0] + m1[1] + m1[2]).to.be.lessThan(m0[0] + m0[1] + m0[2] - 100);
    const grey = await decodeClip(halves, h, {
      start: 0.2,
      frames: 1,
      fps: 10,
      width: size,
      height: size,
      crop: { x: 0, y: 0, w: 30, h: 48 },
      jitter: { brightness: 0, contrast: 1, saturation: 0 },
    });
    const g = meanColour(grey.video, 0, size);
    expect(Math.max(...g) - Math.min(...g)).to.be.lessThan(8);
  });

  it('gives identical clips for the same seed, and different ones for another', async () => {
    const g = { frames: 4, fps: 8, size: 24, audioSeconds: 2, sampleRate: 16000 };
    const run = async (seed: number): Promise<Uint8Array> => {
      const plan = planClip(info, g, { mode: 'train', rng: new Prng(seed) });
      const d = await decodeClip(colours, info, {
        start: plan.start,
        frames: g.frames,
        fps: g.fps,
        width: g.size,
        height: g.size,
        crop: plan.crop,
        flip: plan.flip,
        jitter: plan.jitter,
      });
      return d.video;
    };
    const [a, b, c] = [await run(7), await run(7), await run(8)];
    expect(Buffer.from(a).equals(Buffer.from(b))).to.equal(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).to.equal(false);
    const p1 = planClip(info, g, { mode: 'train', rng: new Prng(3) });
    const p2 = planClip(info, g, { mode: 'train', rng: new Prng(3) });
    expect(p1).to.deep.equal(p2);
    expect(p1.gain).to.be.within(0.8, 1.2);
    expect(p1.crop.w * p1.crop.h).to.be.within(0.25 * 64 * 48 * 0.95, 64 * 48);
  });

  it('decodes several clips in one process with the same results, and pins a failure on its clip', async () => {
    const h = await probe(halves);
    const reqA = { start: 0.9, frames: 4, fps: 8, width: 16, height: 16, audio: { start: 0.4, samples: 16000, sampleRate: 16000 } };
    const reqB = { start: 0.2, frames: 2, fps: 10, width: 16, height: 16 };
    const alone = await decodeClip(colours, info, reqA);
    const both = await decodeClips([
      { file: colours, info, req: reqA },
      { file: halves, info: h, req: reqB },
    ]);
    const a = both[0];
    if (a instanceof DataError) throw a;
    expect(Buffer.from(a.video).equals(Buffer.from(alone.video))).to.equal(true);
    expect(Buffer.from(a.audio!.buffer).equals(Buffer.from(alone.audio!.buffer))).to.equal(true);
    // A file whose codec id was overwritten: ffmpeg fails the whole process, the retry blames only that clip.
    const bad = path.join(dir, 'badcodec.mkv');
    const b = fs.readFileSync(halves);
    b.write('V_ZZZZZ/ISO/QQQ', b.indexOf('V_MPEG4/ISO/AVC'));
    fs.writeFileSync(bad, b);
    const mixed = await decodeClips([
      { file: colours, info, req: reqA },
      { file: bad, info: h, req: reqB },
    ]);
    expect(mixed[1]).to.be.instanceOf(DataError);
    expect((mixed[1] as DataError).reason).to.equal('unsupported_codec');
    expect(Buffer.from((mixed[0] as { video: Uint8Array }).video).equals(Buffer.from(alone.video))).to.equal(true);
  });

  it('reports truncated decodes and too-short files as DataError', async () => {
    try {
      await decodeClip(colours, info, { start: 2.9, frames: 8, fps: 8, width: 16, height: 16 });
      expect.fail('should throw');
    } catch (e) {
      expect(e).to.be.instanceOf(DataError);
      expect((e as DataError).reason).to.equal('truncated');
    }
    const g = { frames: 8, fps: 8, size: 16, audioSeconds: 2, sampleRate: 16000 };
    expect(() => planClip(info, g, { mode: 'eval', window: { start: 1, end: 1.5 } })).to.throw(DataError, /too_short/);
  });

  it('decodeAudioFile: a whole soundtrack as mono PCM at the asked rate; no audio is an error naming the file', async () => {
    const pcm = await decodeAudioFile(colours, 16000);
    expect(pcm.length).to.be.closeTo(3 * 16000, 1100); // AAC priming / padding: within ~1024 samples
    expect(zeroCrossingHz(pcm, 16000, 2000, pcm.length - 2000)).to.be.closeTo(1000, 10);
    expect(rms(pcm, 2000, pcm.length - 2000)).to.be.closeTo(0.4 / Math.SQRT2, 0.03);
    const at8k = await decodeAudioFile(colours, 8000);
    expect(at8k.length).to.be.closeTo(pcm.length / 2, 2);
    let err: Error | undefined;
    try {
      await decodeAudioFile(halves, 16000);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/^cmac: could not decode the audio of .*halves\.mkv/);
    await rejects(decodeAudioFile(colours, 0), RangeError, /sampleRate must be a positive integer, got 0/);
  });

  it('muxSoundtrack: the picture copied, the sound cut from another file at from..from+seconds', async () => {
    const out = path.join(dir, 'muxed.mp4');
    await muxSoundtrack({ video: halves, audio: sync, from: 1.5, seconds: 1, out });
    const m = await probe(out);
    expect(m.video).to.include({ codec: 'h264', width: 64, height: 48 });
    expect(m.audio).to.include({ codec: 'aac' });
    expect(m.duration).to.be.closeTo(1, 0.15);
    // sync.mp4 clicks at 2.0 s: 0.5 s into the cut.
    const pcm = await decodeAudioFile(out, 16000);
    let peak = 0;
    for (let i = 1; i < pcm.length; i++) if (Math.abs(pcm[i]) > Math.abs(pcm[peak])) peak = i;
    expect(peak / 16000).to.be.closeTo(0.5, 0.05);
    await rejects(muxSoundtrack({ video: halves, audio: sync, from: -1, seconds: 1, out }), RangeError, /from must be >= 0/);
  });
});
