// Pixels for pictures: colour maps, bilinear resizing, heat-map overlays of
// attention maps on frames, boxes, and side-by-side layout. RGB, 8 bit.
import { minMaxNormalise, upsampleBilinear } from '../eval/localization';
import * as pixelFonts from 'js-pixel-fonts';
import type { RgbImage } from './png';

export type ColormapName = 'jet' | 'inferno' | 'gray';

// matplotlib's inferno at 0, 0.1, ..., 1.
const infernoStops: Array<[number, number, number]> = [
  [0, 0, 4],
  [22, 11, 57],
  [66, 10, 104],
  [106, 23, 110],
  [147, 38, 103],
  [188, 55, 84],
  [221, 81, 58],
  [243, 120, 25],
  [252, 165, 10],
  [246, 215, 70],
  [252, 255, 164],
];

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** The colour of t in [0, 1] (clamped; NaN is black). */
export function colormap(name: ColormapName, t: number): [number, number, number] {
  if (!Number.isFinite(t)) return [0, 0, 0];
  t = clamp01(t);
  if (name === 'gray') {
    const v = Math.round(t * 255);
    return [v, v, v];
  }
  if (name === 'jet') {
    const f = (x: number) => Math.round(255 * clamp01(1.5 - Math.abs(4 * t - x)));
    return [f(3), f(2), f(1)];
  }
  const x = t * 10,
    i = Math.min(9, Math.floor(x)),
    u = x - i;
  const a = infernoStops[i],
    b = infernoStops[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * u)) as [number, number, number];
}

/** A blank RGB image. */
export function blank(width: number, height: number, rgb: [number, number, number] = [255, 255, 255]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, channels: 3, data };
}

/** Bilinear resize (align_corners=False) of an RGB image. */
export function resize(img: RgbImage, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  const ch = img.channels;
  for (let c = 0; c < 3; c++) {
    const plane = new Float64Array(img.width * img.height);
    for (let i = 0; i < plane.length; i++) plane[i] = img.data[i * ch + c];
    const up = upsampleBilinear(plane, img.height, img.width, height, width);
    for (let i = 0; i < up.length; i++) out[i * 3 + c] = Math.round(Math.max(0, Math.min(255, up[i])));
  }
  return { width, height, channels: 3, data: out };
}

/** A [h, w] map as a coloured image of size x size (bilinear upsample, min-max normalised). */
export function heatmap(map: ArrayLike<number>, h: number, w: number, size: number, cmap: ColormapName = 'jet'): RgbImage {
  const v = minMaxNormalise(upsampleBilinear(map, h, w, size, size));
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < v.length; i++) data.set(colormap(cmap, v[i]), i * 3);
  return { width: size, height: size, channels: 3, data };
}

/** Options of {@link overlay}. */
export interface OverlayOptions {
  /** Output side in pixels (default 224, the evaluation grid). */
  size?: number;
  /** Weight of the heat colour (default 0.5). */
  alpha?: number;
  cmap?: ColormapName;
  /** Boxes [x0, y0, x1, y1] on the 224 grid, drawn as outlines (e.g. the ground truth). */
  boxes?: Array<[number, number, number, number]>;
  boxColour?: [number, number, number];
}

/**
 * The map upsampled to the frame (bilinear, as the evaluation does), min-max
 * normalised, coloured and blended over the frame resized to size x size.
 */
export function overlay(frame: RgbImage, map: ArrayLike<number>, h: number, w: number, o: OverlayOptions = {}): RgbImage {
  const size = o.size ?? 224,
    alpha = o.alpha ?? 0.5;
  const base = frame.width === size && frame.height === size && frame.channels === 3 ? frame : resize(frame, size, size);
  const heat = heatmap(map, h, w, size, o.cmap ?? 'jet');
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.round((1 - alpha) * base.data[i] + alpha * heat.data[i]);
  const img: RgbImage = { width: size, height: size, channels: 3, data };
  for (const b of o.boxes ?? [])
    drawBox(img, b.map((v) => (v * size) / 224) as [number, number, number, number], o.boxColour ?? [255, 255, 255]);
  return img;
}

/** Outlines [x0, y0, x1, y1] (x1, y1 exclusive) in place, `thick` pixels wide. */
export function drawBox(img: RgbImage, box: [number, number, number, number], rgb: [number, number, number], thick = 2): void {
  const [x0, y0, x1, y1] = box.map(Math.round);
  const put = (x: number, y: number) => {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
    img.data.set(rgb, (y * img.width + x) * img.channels);
  };
  for (let t = 0; t < thick; t++) {
    for (let x = x0; x < x1; x++) {
      put(x, y0 + t);
      put(x, y1 - 1 - t);
    }
    for (let y = y0; y < y1; y++) {
      put(x0 + t, y);
      put(x1 - 1 - t, y);
    }
  }
}

/** Images side by side (tops aligned) with `gap` pixels of `bg` between them. */
export function hstack(images: RgbImage[], gap = 4, bg: [number, number, number] = [255, 255, 255]): RgbImage {
  const w = images.reduce((a, im) => a + im.width, 0) + gap * Math.max(0, images.length - 1);
  const h = Math.max(...images.map((im) => im.height));
  const out = blank(w, h, bg);
  let x0 = 0;
  for (const im of images) {
    paste(out, im, x0, 0);
    x0 += im.width + gap;
  }
  return out;
}

/** Images one above the other (left aligned). */
export function vstack(images: RgbImage[], gap = 4, bg: [number, number, number] = [255, 255, 255]): RgbImage {
  const w = Math.max(...images.map((im) => im.width));
  const h = images.reduce((a, im) => a + im.height, 0) + gap * Math.max(0, images.length - 1);
  const out = blank(w, h, bg);
  let y0 = 0;
  for (const im of images) {
    paste(out, im, 0, y0);
    y0 += im.height + gap;
  }
  return out;
}

/** Copies `src` into `dst` at (x0, y0), clipped. */
export function paste(dst: RgbImage, src: RgbImage, x0: number, y0: number): void {
  for (let y = 0; y < src.height; y++) {
    const dy = y0 + y;
    if (dy < 0 || dy >= dst.height) continue;
    for (let x = 0; x < src.width; x++) {
      const dx = x0 + x;
      if (dx < 0 || dx >= dst.width) continue;
      for (let c = 0; c < 3; c++) dst.data[(dy * dst.width + dx) * dst.channels + c] = src.data[(y * src.width + x) * src.channels + c];
    }
  }
}

/** Frame bytes [size, size, 3] as an image. */
export function frameImage(data: Uint8Array, width: number, height = width): RgbImage {
  return { width, height, channels: 3, data };
}

// Labels in pictures: js-pixel-fonts' "Seven plus" bitmap font (7 px capitals
// and digits, descenders below), scaled by whole pixels.
const font = pixelFonts.fonts.sevenPlus;
const textCache = new Map<string, number[][]>();
function textPixels(text: string): number[][] {
  let px = textCache.get(text);
  if (!px) {
    px = text ? pixelFonts.renderPixels(text.replace(/[^\x20-\x7e]/g, '?'), font) : [[]];
    if (textCache.size > 512) textCache.clear();
    textCache.set(text, px);
  }
  return px;
}

/** Width and height in pixels of `text` drawn at `scale`. */
export function textSize(text: string, scale = 1): { width: number; height: number } {
  const px = textPixels(text);
  return { width: Math.max(0, ...px.map((r) => r.length)) * scale, height: Math.max(font.lineHeight, px.length) * scale };
}

/** Draws `text` (printable ASCII) with its top-left corner at (x, y), clipped to the image. */
export function drawText(img: RgbImage, text: string, x: number, y: number, rgb: [number, number, number] = [0, 0, 0], scale = 1): void {
  const px = textPixels(text);
  for (let r = 0; r < px.length; r++) {
    const row = px[r] ?? [];
    for (let c = 0; c < row.length; c++) {
      if (!row[c]) continue;
      for (let dy = 0; dy < scale; dy++)
        for (let dx = 0; dx < scale; dx++) {
          const X = x + c * scale + dx,
            Y = y + r * scale + dy;
          if (X >= 0 && Y >= 0 && X < img.width && Y < img.height) img.data.set(rgb, (Y * img.width + X) * img.channels);
        }
    }
  }
}

/** `img` under a white strip holding `title`, centred (scale 1, or 2 for images 300 px and wider). */
export function titled(img: RgbImage, title: string, scale = img.width >= 300 ? 2 : 1): RgbImage {
  const t = textSize(title, scale);
  const strip = 9 * scale + 6;
  const out = blank(img.width, img.height + strip);
  drawText(out, title, Math.max(0, Math.round((img.width - t.width) / 2)), 3, [0, 0, 0], scale);
  paste(out, img, 0, strip);
  return out;
}

/** Options of {@link colourBar}. */
export interface ColourBarOptions {
  cmap?: ColormapName;
  /** Labels at the top and bottom end (default 'max' and 'min'). */
  high?: string;
  low?: string;
  /** A label written along the middle (e.g. 'attention'). */
  label?: string;
  barWidth?: number;
}

/** A vertical colour bar `height` pixels tall (top = 1, bottom = 0) with its end labels to the right. */
export function colourBar(height: number, o: ColourBarOptions = {}): RgbImage {
  const bw = o.barWidth ?? 12,
    high = o.high ?? 'max',
    low = o.low ?? 'min';
  const labelW = Math.max(textSize(high).width, textSize(low).width, o.label ? textSize(o.label).width : 0);
  const img = blank(bw + 6 + labelW + 2, height);
  for (let y = 0; y < height; y++) {
    const rgb = colormap(o.cmap ?? 'jet', height > 1 ? 1 - y / (height - 1) : 1);
    for (let x = 0; x < bw; x++) img.data.set(rgb, (y * img.width + x) * 3);
  }
  drawText(img, high, bw + 4, 0);
  drawText(img, low, bw + 4, height - 9);
  if (o.label) drawText(img, o.label, bw + 4, Math.round(height / 2 - 4));
  return img;
}
