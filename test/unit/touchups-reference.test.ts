/**
 * The boot touch-up engine against the real kernel: for each shipped CPU model, the text the
 * engine produces from the file's tables (shared/x86/touchups/) must equal what the Debian 6.1
 * kernel held after a real boot under QEMU on that CPU (../shared/fixtures/.../reference/),
 * except where the kernel's own init code flipped static keys after boot, which no simulated
 * guest runs. Those keys are read off the dump, each consistently, and once their entries are
 * set, not one byte of the 14 MiB text may differ.
 */
import test from 'ava';
import { join } from 'node:path';
import { encodeJumpLabel } from '../../shared/x86/patch-encodings.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { vmlinuxTextSpace, vmlinuxTouchupContext, vmlinuxTouchupTables } from '../../shared/kernel-image/touchup-tables.ts';
import { applyBootTouchups } from '../../shared/x86/touchups/boot-touchups.ts';
import { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';
import { changedKeys, jumpKeyStates } from '../../checks/reference/runtime-state.ts';
import { readReferenceFolder } from '../../checks/reference/reference-folder.ts';
import { fixtureDir, loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

for (const name of BUILTIN_CPU_MODELS.keys()) {
  fixtureTest(`${name}: the booted text equals the real kernel's, but for the static keys init code enabled`, async (t) => {
    const image = await loadFixtureKernel();
    const ref = readReferenceFolder(join(fixtureDir, 'reference', name));
    if (!ref.ok) return t.fail(ref.error);
    const model = BUILTIN_CPU_MODELS.get(name)!;
    t.deepEqual([...ref.value.model.capabilities], [...model.capabilities], 'the embedded model is the reference folder');
    const tables = vmlinuxTouchupTables(image);
    const space = vmlinuxTextSpace(image);
    const b = image.boundaries;
    const report = applyBootTouchups(
      space,
      tables,
      { sites: image.mcountSites.map((s) => s.address), fentry: b.__fentry__ },
      { start: b._stext, end: b._etext },
      vmlinuxTouchupContext(image, model),
    );
    t.is(report.uniprocessor, model.presentCpus === 1);
    const ours = space.locate(b._stext)!.region.bytes;
    const real = ref.value.text;
    t.is(ref.value.textAddr, b._stext);
    t.is(real.length, Number(b._etext - b._stext));

    // Every byte that differs before the runtime keys are set lies in a jump-label site.
    const entries = image.jumpEntries.map((e) => ({ site: e.site, key: e.key, branch: (e.flags & 1) === 1, length: e.length }));
    const owners = new SiteOwners(tables, { jumpSites: entries.map((e) => ({ site: e.site, len: e.length })) });
    const outside: string[] = [];
    for (let i = 0; i < real.length; i++) {
      if (ours[i] === real[i]) continue;
      const at = b._stext + BigInt(i);
      if (!owners.at(at).some((o) => o.table === 'jump-label') && outside.length < 5) outside.push(`0x${at.toString(16)}: ${owners.describe(at)}`);
    }
    t.deepEqual(outside, [], 'bytes outside jump-label sites differ from the real boot');

    // Only .text was dumped (init text is gone by then).
    const view = (text: Uint8Array) => (site: bigint, len: number) =>
      site >= b._stext && site + BigInt(len) <= b._etext ? text.subarray(Number(site - b._stext), Number(site - b._stext) + len) : undefined;
    const booted = jumpKeyStates(entries, view(ours));
    const realStates = jumpKeyStates(entries, view(real));
    t.deepEqual(realStates.inconsistent, [], 'every key of the real text has one state');
    t.deepEqual(realStates.unreadable, []);
    const changed = changedKeys(booted, realStates);
    t.true(changed.size > 0, 'the real kernel enabled keys while booting');
    for (const e of image.jumpEntries) {
      const state = changed.get(e.key);
      if (state !== undefined) space.write(e.site, encodeJumpLabel(e.site, e.length, e.target, state !== ((e.flags & 1) === 1)));
    }
    let differing = 0;
    for (let i = 0; i < real.length; i++) if (ours[i] !== real[i]) differing++;
    t.is(differing, 0, `${differing} bytes differ from the real boot after the ${changed.size} runtime keys are set`);
  });
}
