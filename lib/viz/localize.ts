// Sound-source maps along a whole video: consecutive clips (each with the
// audio window centred on it, as in training), their alpha/beta maps, PNG
// overlays per frame, an MP4 of the overlays with the original audio, the
// frequency attention over the soundtrack's spectrogram, and the maps as
// safetensors. ffmpeg runs only through lib/data/ffmpeg.ts.
import * as fs from 'fs';
import * as path from 'path';
import type { CmacConfig } from '../config';
import { squareCentreCrop } from '../data/augment';
import { DataError } from '../data/errors';
import { decodeClips, probe } from '../data/decode';
import { ClipJob, decodeAudioFile, muxSoundtrack, openVideoEncoder, ProbeInfo, VideoEncoder } from '../data/ffmpeg';
import type { CmacModel } from '../model';
import { checkOptionKeys, keysOf } from '../options';
import { writeSafetensors } from '../safetensors';
import { onProcessExit, removeStaleTempFiles } from '../files';
import { blank, colourBar, drawText, frameImage, hstack, overlay, paste, titled } from './image';
import type { RgbImage } from './png';
import { encodePng } from './png';
import { frequencyTimeline } from './spectrogram';

/** Options of {@link localizeVideo}. */
export interface LocalizeOptions {
  /** Which maps each overlay frame shows (default both, side by side: alpha_v | beta_v). */
  maps?: 'alpha' | 'beta' | 'both';
  /** Overlay side in pixels (default 224); frames are decoded at this size for display. */
  size?: number;
  /** At most this many clips from the start (default: the whole video). */
  maxClips?: number;
  /** Start at this time (s, default 0). */
  from?: number;
  batchSize?: number;
  /** Skip the MP4 (default: write it). */
  noVideo?: boolean;
  log?: (line: string) => void;
}

const localizeOptionKeys = keysOf<LocalizeOptions>()(['maps', 'size', 'maxClips', 'from', 'batchSize', 'noVideo', 'log']);

/** What {@link localizeVideo} wrote. */
export interface LocalizeResult {
  clips: number;
  clipStarts: number[];
  clipSeconds: number;
  frames: string[];
  video?: string;
  frequency?: string;
  maps: string;
  index: string;
}

/**
 * Computes the maps of consecutive clips along `file` and writes, under
 * `outDir`: `frames/clip-KKKK-fF.png` (overlay per clip frame; the maps are
 * pooled over the clip's frames, so a clip's frames share them),
 * `overlay.mp4` (the overlays at the clip frame rate with the original audio),
 * `frequency.png` (spectrogram + alpha_a / beta_a per clip), `maps.safetensors`
 * (alphaV, betaV [K, H', W'], alphaA, betaA [K, M], clipStart [K]) and
 * `index.json`.
 */
export async function localizeVideo(
  model: CmacModel,
  config: CmacConfig,
  file: string,
  outDir: string,
  o: LocalizeOptions = {},
): Promise<LocalizeResult> {
  checkOptionKeys(o, localizeOptionKeys, 'localizeVideo()');
  const log = o.log ?? (() => undefined);
  const info: ProbeInfo = await probe(file);
  if (!info.video) throw new Error(`${file} has no video stream`);
  const { frames: T, fps, size, audioSeconds } = config.clip;
  const sr = config.logmel.sampleRate;
  const samples = Math.round(audioSeconds * sr);
  const clipSeconds = T / fps;
  const from = o.from ?? 0;
  const usable = Math.min(info.duration, info.video.duration && info.video.duration > 0 ? info.video.duration : info.duration) - from;
  let K = Math.floor(usable / clipSeconds + 1e-9);
  if (o.maxClips) K = Math.min(K, o.maxClips);
  if (K < 1) throw new Error(`${file} is shorter (${usable.toFixed(2)} s from ${from} s) than one clip (${clipSeconds} s)`);
  const disp = o.size ?? 224;
  const crop = squareCentreCrop(info.video.width, info.video.height);
  const starts = Array.from({ length: K }, (_, k) => from + k * clipSeconds);
  fs.mkdirSync(path.join(outDir, 'frames'), { recursive: true });
  removeStaleTempFiles(outDir); // overlay videos of a killed run (*.tmp-<pid>)
  const which = o.maps ?? 'both';
  const bs = o.batchSize ?? 16;
  const acc: Record<'alphaV' | 'betaV' | 'alphaA' | 'betaA', Float32Array[]> = { alphaV: [], betaV: [], alphaA: [], betaA: [] };
  let mapShape: number[] = [],
    bandCount = 0;
  const frameFiles: string[] = [];
  // The overlay frames stream into one ffmpeg as they are drawn (memory stays
  // bounded however long the video); its output and the muxed MP4 are temp
  // files named by pid until renamed, removed on any exit before that.
  const silent = path.join(outDir, `.overlay-video.mp4.tmp-${process.pid}`);
  const muxed = path.join(outDir, `overlay.mp4.tmp-${process.pid}`);
  let encoder: VideoEncoder | undefined;
  const dropTemp = () => {
    encoder?.abort();
    for (const f of [silent, muxed]) fs.rmSync(f, { force: true });
  };
  const cancelExitHook = onProcessExit(dropTemp);
  try {
    for (let b0 = 0; b0 < K; b0 += bs) {
      const ks = starts.slice(b0, b0 + bs);
      const jobs: ClipJob[] = ks.flatMap((s) => {
        const model: ClipJob = {
          file,
          info,
          req: {
            start: s,
            frames: T,
            fps,
            width: size,
            height: size,
            crop,
            audio: { start: s + clipSeconds / 2 - audioSeconds / 2, samples, sampleRate: sr },
          },
        };
        const show: ClipJob = { file, info, req: { start: s, frames: T, fps, width: disp, height: disp, crop } };
        return disp === size ? [model] : [model, show];
      });
      const dec = [];
      for (let j = 0; j < jobs.length; j += 8) dec.push(...(await decodeClips(jobs.slice(j, j + 8))));
      const per = disp === size ? 1 : 2;
      const n = ks.length;
      const video = new Uint8Array(n * T * size * size * 3);
      const audio = new Float32Array(n * samples);
      const shows: Uint8Array[] = [];
      for (let i = 0; i < n; i++) {
        const d = dec[i * per],
          s = dec[i * per + per - 1];
        if (d instanceof DataError) throw new Error(`clip at ${ks[i].toFixed(2)} s: ${d.message}`);
        if (s instanceof DataError) throw new Error(`clip at ${ks[i].toFixed(2)} s: ${s.message}`);
        video.set(d.video, i * T * size * size * 3);
        if (d.audio) audio.set(d.audio, i * samples);
        shows.push(s.video);
      }
      const m = await model.maps({ video: { data: video, shape: [n, T, size, size, 3] }, audio: { data: audio, shape: [n, samples] } });
      mapShape = m.alphaV!.shape.slice(1);
      bandCount = m.alphaA!.shape[1];
      const [h, w] = mapShape;
      for (let i = 0; i < n; i++) {
        const k = b0 + i;
        const pick = (t: { data: Float32Array | unknown; shape: readonly number[] } | undefined, len: number) =>
          t ? (t.data as Float32Array).slice(i * len, (i + 1) * len) : new Float32Array(len);
        const a = pick(m.alphaV, h * w),
          be = pick(m.betaV, h * w);
        acc.alphaV.push(a);
        acc.betaV.push(be);
        acc.alphaA.push(pick(m.alphaA, bandCount));
        acc.betaA.push(pick(m.betaA, bandCount));
        for (let f = 0; f < T; f++) {
          const fb = disp * disp * 3;
          const frame = frameImage(shows[i].subarray(f * fb, (f + 1) * fb), disp);
          const img = overlayFrame(
            frame,
            { alphaV: which !== 'beta' ? a : undefined, betaV: which !== 'alpha' ? be : undefined },
            h,
            w,
            disp,
            starts[k] + f / fps,
            `clip ${k + 1}/${K}, frame ${f + 1}/${T}`,
          );
          const name = path.join(outDir, 'frames', `clip-${String(k).padStart(4, '0')}-f${f}.png`);
          fs.writeFileSync(name, encodePng(img));
          frameFiles.push(name);
          if (!o.noVideo) {
            encoder ??= openVideoEncoder({ out: silent, width: img.width, height: img.height, fps, format: 'mp4' }, { crf: 20 });
            await encoder.write(img.data);
          }
        }
      }
      log(`clips ${Math.min(K, b0 + bs)}/${K}`);
    }
    const cat = (list: Float32Array[]) => {
      const out = new Float32Array(list.reduce((s, x) => s + x.length, 0));
      let p = 0;
      for (const x of list) {
        out.set(x, p);
        p += x.length;
      }
      return out;
    };
    const mapsFile = path.join(outDir, 'maps.safetensors');
    await writeSafetensors(
      mapsFile,
      {
        alphaV: { data: cat(acc.alphaV), shape: [K, ...mapShape] },
        betaV: { data: cat(acc.betaV), shape: [K, ...mapShape] },
        alphaA: { data: cat(acc.alphaA), shape: [K, bandCount] },
        betaA: { data: cat(acc.betaA), shape: [K, bandCount] },
        clipStart: { data: Float32Array.from(starts), shape: [K] },
      },
      {
        video: path.resolve(file),
        clipSeconds: String(clipSeconds),
        frames: String(T),
        fps: String(fps),
        audioSeconds: String(audioSeconds),
        note: 'beta needs audio: where the file has none it is computed on silence',
      },
    );
    const result: LocalizeResult = {
      clips: K,
      clipStarts: starts,
      clipSeconds,
      frames: frameFiles,
      maps: mapsFile,
      index: path.join(outDir, 'index.json'),
    };
    let pcm: Float32Array | undefined;
    if (info.audio) {
      pcm = await decodeAudioFile(file, sr);
      const pic = frequencyTimeline(pcm, {
        ...config.logmel,
        maps: { alpha_a: cat(acc.alphaA), beta_a: cat(acc.betaA) },
        bands: bandCount,
        clipStarts: starts,
        clipSeconds,
      });
      result.frequency = path.join(outDir, 'frequency.png');
      fs.writeFileSync(result.frequency, encodePng(pic));
    } else log(`${file} has no audio: beta maps are computed on silence and no frequency picture is written`);
    if (encoder) {
      await encoder.close();
      result.video = path.join(outDir, 'overlay.mp4');
      if (info.audio) {
        // The original soundtrack from the first clip's start, cut to the overlay's length.
        await muxSoundtrack({ video: silent, audio: file, from, seconds: K * clipSeconds, out: muxed });
        fs.renameSync(muxed, result.video);
        fs.rmSync(silent, { force: true });
      } else fs.renameSync(silent, result.video);
    }
    fs.writeFileSync(
      result.index,
      JSON.stringify(
        {
          video: path.resolve(file),
          clips: K,
          clipSeconds,
          clipStarts: starts,
          maps: which,
          overlaySize: disp,
          frames: frameFiles.map((f) => path.relative(outDir, f)),
          overlay: result.video && path.relative(outDir, result.video),
          frequency: result.frequency && path.relative(outDir, result.frequency),
          mapsFile: 'maps.safetensors',
        },
        null,
        1,
      ) + '\n',
    );
    return result;
  } catch (e) {
    dropTemp();
    throw e;
  } finally {
    cancelExitHook();
  }
}

/**
 * One overlay frame of `cmac localize`: the titled alpha_v and/or beta_v
 * overlays side by side, a colour bar (each map min-max normalised), and a
 * strip below with the frame's time in the video; even width and height (for
 * the yuv420p video).
 */
export function overlayFrame(
  frame: RgbImage,
  maps: { alphaV?: ArrayLike<number>; betaV?: ArrayLike<number> },
  h: number,
  w: number,
  size: number,
  seconds: number,
  note = '',
): RgbImage {
  const panels: RgbImage[] = [];
  if (maps.alphaV) panels.push(titled(overlay(frame, maps.alphaV, h, w, { size }), 'alpha_v (no audio)'));
  if (maps.betaV) panels.push(titled(overlay(frame, maps.betaV, h, w, { size }), 'beta_v (audio-guided)'));
  const strip = panels[0].height - size;
  const bar = colourBar(size, { high: 'max', low: 'min' });
  const top = hstack([...panels, blank(bar.width, strip + size)], 4);
  paste(top, bar, top.width - bar.width, strip);
  const scale = size >= 300 ? 2 : 1;
  const stamp = `t = ${seconds.toFixed(2)} s${note ? `   (${note})` : ''}`;
  const foot = 9 * scale + 6;
  const W = top.width + (top.width % 2),
    H0 = top.height + foot,
    H = H0 + (H0 % 2);
  const out = blank(W, H);
  paste(out, top, 0, 0);
  drawText(out, stamp, 4, top.height + 3, [0, 0, 0], scale);
  return out;
}
