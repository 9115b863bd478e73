// Pieces every way of producing a clip shares (decoded, cut from the train
// cache, read from the clip cache): its meta, the audio gain and the record
// of the augmentation drawn, and errors named by the sample's id.
import { applyAudioAugment, type ClipPlan } from '../augment';
import { DataError } from '../errors';
import type { SampleRef } from '../sources';
import type { ClipMeta, Produced, Unit } from './types';

/** Meta of a clip before its audio is known (no padding, not silent). */
export function baseMeta(u: Unit, epoch: number, position: number, at: Pick<ClipPlan, 'start' | 'audioStart'>): ClipMeta {
  const ref = u.ref;
  const m: ClipMeta = {
    id: ref.id,
    index: ref.index,
    clip: u.clip,
    epoch,
    position,
    start: at.start,
    audioStart: at.audioStart,
    audioPad: { front: 0, back: 0 },
  };
  if (ref.label !== undefined) m.label = ref.label;
  if (ref.boxes !== undefined) m.boxes = ref.boxes;
  if (ref.extra !== undefined) m.extra = ref.extra;
  return m;
}

/**
 * A clip's decoded audio: the clip's window sits at `margin + shift` in
 * `pcm` (a decode widens the window by the largest shift, `margin`, each
 * side; the train cache reads the shifted window itself: both 0), with the
 * zeros padded before / after the file in `pcm`.
 */
export interface ClipAudio {
  pcm: Float32Array;
  margin: number;
  shift: number;
  front: number;
  back: number;
}

/**
 * The finished clip: the audio window cut out of `audio` and the plan's gain
 * applied (silence when there is none), the padding that lands inside the
 * window, and `meta.augment` when the clip was augmented.
 */
export function finishClip(
  meta: ClipMeta,
  video: Uint8Array,
  audio: ClipAudio | undefined,
  plan: ClipPlan,
  o: { samples: number; augmented: boolean; clipBytes: number },
): Produced {
  const samples = o.samples;
  let pcm: Float32Array;
  if (audio) {
    const { margin, shift } = audio;
    pcm = applyAudioAugment(audio.pcm, samples, { gain: plan.gain, shiftSamples: shift, shiftMargin: margin });
    meta.audioPad = {
      front: Math.max(0, Math.min(samples, audio.front - margin - shift)),
      back: Math.max(0, Math.min(samples, audio.back - margin + shift)),
    };
  } else {
    pcm = new Float32Array(samples);
    meta.silent = true;
  }
  if (o.augmented)
    meta.augment = { crop: plan.crop, flip: plan.flip, jitter: plan.jitter, gain: plan.gain, shiftSamples: plan.shiftSamples };
  return { ok: true, video, audio: pcm, meta, bytes: o.clipBytes };
}

/** The error as the sample's (its id, not the file it was read from). */
export function renamed(e: DataError, ref: SampleRef): DataError {
  return e.file === ref.id
    ? e
    : new DataError(e.reason, ref.id, e.message.startsWith(e.file) ? e.message.slice(e.file.length + 2) : e.message);
}

/** A skip for the sample, counting `bytes`. */
export function skipped(e: DataError, ref: SampleRef, bytes: number): Produced {
  return { ok: false, error: renamed(e, ref), bytes };
}
