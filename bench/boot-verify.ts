/**
 * The verifier's end-of-boot prediction and comparison (verifier-vm/end-state/
 * kernel-text-prediction.ts), in process: rebuild the file's .text from the guest's bytes and
 * the manifest's site bytes, check the 3,586 page digests, run the boot touch-ups for the CPU
 * model, compare 14.7 MB. The worker runs exactly this function on the kernel-text request.
 */
import { loadKernelImage } from '../shared/kernel-image/load-kernel.ts';
import { fixturePaths, defaultFixtureDir } from '../shared/kernel-image/fixture-paths.ts';
import { vmlinuxTextSpace, vmlinuxTouchupContext, vmlinuxTouchupTables } from '../shared/kernel-image/touchup-tables.ts';
import { DEFAULT_CPU_MODEL } from '../shared/x86/cpu-models-builtin.ts';
import { applyBootTouchups } from '../shared/x86/touchups/boot-touchups.ts';
import { checkPredictedText } from '../verifier-vm/end-state/kernel-text-prediction.ts';
import { buildManifestBody } from '../tools/manifest-builder.ts';
import { indexManifest } from '../verifier-vm/manifest.ts';
import type { BenchContext } from './context.ts';
import { median } from './stats.ts';

/** Median milliseconds of one end-of-boot check of the default model's text. */
export async function measureBootVerify(ctx: BenchContext, runs: number): Promise<{ medianMs: number; runs: number; model: string }> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel (fixtures)');
  const fp = fixturePaths(defaultFixtureDir());
  const img = await loadKernelImage({ vmlinuzPath: fp.vmlinuz, systemMapPath: fp.systemMap });
  if (!img.ok) throw new Error(img.error.message);
  const image = img.value;
  const b = image.boundaries;
  const space = vmlinuxTextSpace(image);
  applyBootTouchups(
    space,
    vmlinuxTouchupTables(image),
    { sites: image.mcountSites.map((s) => s.address), fentry: b.__fentry__ },
    { start: b._stext, end: b._etext },
    vmlinuxTouchupContext(image, DEFAULT_CPU_MODEL),
  );
  const text = space.locate(b._stext)!.region.bytes;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    // A fresh manifest index each run: the worker decodes the touch-up tables once per manifest.
    const manifest = indexManifest(buildManifestBody(image, { kernel: 'bench', vmlinuzSha256: '0'.repeat(64) }), '0'.repeat(16));
    const t0 = performance.now();
    const r = checkPredictedText(manifest, DEFAULT_CPU_MODEL, b._stext, text);
    times.push(performance.now() - t0);
    if (!r.ok) throw new Error(`the end-of-boot check refused the booted text: ${r.error}`);
  }
  return { medianMs: median(times), runs, model: DEFAULT_CPU_MODEL.name };
}
