/**
 * Boot and lock of the real Debian 6.1 kernel: page tables in guest memory, every ftrace
 * site a NOP, text RX and rodata R immutable, all other RAM RW NX, CRs pinned, the platform
 * MSRs pinned by the VMM, and the verifier's check of the booted text audited.
 */
import { gva } from '../../shared/addr.ts';
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine, eptOf } from '../helpers/real-machine.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { NOP5 } from '../../shared/x86/patch-encodings.ts';

const realTest = needsFixtures(test);

realTest('the real kernel boots, locks itself, and the verifier accepts its text', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const b = m.image.boundaries;
  const perms = (va: bigint) => eptOf(m, va) & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE);
  t.is(perms(b._stext), EPT_R | EPT_XS | EPT_IMMUTABLE, 'text: RX immutable');
  t.is(perms(b._etext - 1n), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.is(perms(b.__start_rodata), EPT_R | EPT_IMMUTABLE, 'rodata: R immutable');
  t.is(perms(b.__start_ro_after_init), EPT_R | EPT_IMMUTABLE, 'ro_after_init: R immutable');
  t.is(perms(b._sdata), EPT_R | EPT_W, 'data: RW, not executable');
  t.is(perms(b.__bss_start), EPT_R | EPT_W, 'bss: RW, not executable');

  const cpu = m.vmm.bootCpu;
  t.is(m.vmm.core.pins.get(0), CR0.WP);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  t.true(m.vmm.platformPinned);
  // Every __mcount_loc site in .text now holds the 5-byte NOP.
  const sites = m.image.mcountSites.filter((s) => s.section === '.text');
  t.is(sites.length, 38_252);
  t.true(
    sites.every((s) => {
      const r = cpu.read(gva(s.address), 5);
      return r.ok && r.value.every((x, i) => x === NOP5[i]);
    }),
  );
  const boot = m.audit.records().find((r) => r['kind'] === 'kernel-text');
  t.like(boot, { ok: true, applied: true, subject: '.text,.rodata' });
  t.true(m.vmm.core.auth!.bootEnded);
});

realTest('after boot, writes to text through any alias and execution of data are stopped', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const b = m.image.boundaries;
  // The kernel mapping is read-only (CR0.WP is pinned): #PF in the guest's own checks.
  const ro = await m.write('_stext+0x10', Uint8Array.of(0xcc), 'kernel');
  t.is(ro.outcome, 'denied');
  t.regex(ro.reason, /write-protect/);
  // The direct-map alias is read-only too; make it writable in the page tables (the attacker
  // owns them) and the EPT still refuses.
  const k = m.kernel!;
  const alias = 0xffff_8880_0000_0000n + (b._stext - 0xffff_ffff_8000_0000n) + 0x10n;
  const e = k.mm.pageTables.protect(alias & ~0xfffn, (1n << 1n) | (1n << 63n));
  t.is(e, undefined);
  k.cpu.invlpg(gva(alias));
  const w = await m.write(`0x${alias.toString(16)}`, Uint8Array.of(0xcc), 'kernel');
  t.is(w.outcome, 'denied');
  t.regex(w.reason, /ept-violation/);
  const x = await m.exec('_sdata', 'kernel');
  t.is(x.outcome, 'denied');
});
