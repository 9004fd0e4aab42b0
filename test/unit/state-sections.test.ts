/**
 * The declared section schemas (shared/state-schema.ts, shared/state-section.ts) on input of
 * unknown origin: a section of the stored image (test/fixtures/vm-image-v2/) with one field
 * made wrong is refused naming that field, a section of another schema version naming the
 * version, and the plain-data encoding (shared/plain-json.ts) of plugin state round-trips and
 * refuses what is not its grammar. The attack these stop: a crafted or foreign section read
 * half-way (a string where a bigint belongs, an unknown field) into the core's protections.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { decodeVmImage } from '../../shared/vm-image.ts';
import { decodeSection, encodeSection, type SectionFormat } from '../../shared/state-section.ts';
import { plain } from '../../shared/plain-json.ts';
import { CORE_SECTION } from '../../hypervisor/core/core-state-schema.ts';
import { VMM_SECTION } from '../../hypervisor/vmm/lifecycle/vmm-section.ts';
import { GUEST_SECTION } from '../../guest/kernel/guest-state-schema.ts';
import { decodeVerifierSection } from '../../verifier-vm/vm-state.ts';

const stored = decodeVmImage(new Uint8Array(readFileSync(new URL('../fixtures/vm-image-v2/hibernate.img', import.meta.url))));
if (!stored.ok) throw new Error(stored.error.message);
const sections = stored.value.sections;

type Obj = Record<string, any>;
/** The section's JSON, changed by `edit`, as bytes again. */
function edited(name: string, edit: (j: Obj) => void): Uint8Array {
  const j = JSON.parse(new TextDecoder().decode(sections.get(name)!)) as Obj;
  edit(j);
  return new TextEncoder().encode(JSON.stringify(j));
}
function refusal<T>(format: SectionFormat<T>, edit: (j: Obj) => void): string {
  const d = decodeSection(format, edited(format.name, edit));
  return d.ok ? 'accepted' : d.error;
}

test('the stored sections decode, and encode back to the same bytes', (t) => {
  for (const f of [CORE_SECTION, VMM_SECTION, GUEST_SECTION] as SectionFormat<unknown>[]) {
    const d = decodeSection(f, sections.get(f.name)!);
    if (!d.ok) throw new Error(d.error);
    t.deepEqual(encodeSection(f, d.value), sections.get(f.name), `${f.name} re-encodes identically`);
  }
});

test('core section: each field of the wrong type or range is refused by its path', (t) => {
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.pins.cr0 = 65536)),
    'core section: data.pins.cr0 must be a hex integer string ("0x1f")',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.pins.cr4 = '0x0010')),
    'core section: data.pins.cr4 must be a hex integer string ("0x1f")',
    'no leading zeros: one spelling per value',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.pins.cr4 = '-0x0')),
    'core section: data.pins.cr4 must be a hex integer string ("0x1f")',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.vcpus[0].cpl = 1)),
    'core section: data.vcpus[0].cpl must be one of 0, 3',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.vcpus[0].idtr.limit = 0x10000)),
    'core section: data.vcpus[0].idtr.limit must be an integer from 0 to 65535',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.ept[0] = [256, 16])),
    'core section: data.ept[0] must be a list of 3 entries',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.ept[0][2] = -1)),
    'core section: data.ept[0][2] must be an integer from 0 to 4294967295',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.msrFilter.defaultAction = 'maybe')),
    'core section: data.msrFilter.defaultAction must be one of "allow", "deny"',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.msrFilter.ranges[0].bitmap = 'not base64!')),
    'core section: data.msrFilter.ranges[0].bitmap must be base64 bytes',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.crFilter.cr3 = 'no')),
    'core section: data.crFilter.cr3 must be a boolean',
  );
  t.is(
    refusal(CORE_SECTION, (j) => delete j.data.protectedMemory),
    'core section: data.protectedMemory is missing (it must be a boolean)',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.pins.cr8 = '0x1')),
    'core section: data.pins has a field the schema does not know: cr8',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.data.auth = { vm: 'x' })),
    'core section: data.auth.kernelRegions is missing (it must be a list of an object {name, vaddr, paddr, size})',
  );
});

test('vmm and guest sections: wrong fields are named, the CPU model through its own validator', (t) => {
  t.is(
    refusal(VMM_SECTION, (j) => (j.data.staged[0][0] = 'boot')),
    'vmm section: data.staged[0][0] must be one of "kexec", "crash"',
  );
  t.is(
    refusal(VMM_SECTION, (j) => (j.data.staged[0][1].sha256 = 'AB')),
    'vmm section: data.staged[0][1].sha256 must be a SHA-256 (64 lowercase hex digits)',
  );
  t.regex(
    refusal(VMM_SECTION, (j) => (j.data.cpu.model.physBits = 60)),
    /^vmm section: data\.cpu\.model: CPU model .*: physBits must be an integer 32\.\.52$/,
  );
  t.is(
    refusal(VMM_SECTION, (j) => delete j.data.cpu),
    'vmm section: data.cpu is missing (it must be an object {model, online})',
  );
  t.is(
    refusal(GUEST_SECTION, (j) => (j.data.staticCalls[0][1] = 5)),
    'guest section: data.staticCalls[0][1] must be a hex integer string ("0x1f") or null',
  );
  t.is(
    refusal(GUEST_SECTION, (j) => (j.data.modules.loaded[0].init = undefined)),
    'guest section: data.modules.loaded[0].init is missing (it must be an object {va, pages} or null)',
  );
  t.regex(
    refusal(GUEST_SECTION, (j) => (j.data.bootCpuData.name = 'x')),
    /^guest section: data\.bootCpuData: boot_cpu_data must be an object of a CPU model's fields without a name$/,
  );
});

test('the envelope: another schema version, another section, not JSON, an unknown field', (t) => {
  t.is(
    refusal(CORE_SECTION, (j) => (j.version = 2)),
    'core section: schema version 2 is not 1, the only version this heki-sim reads',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.section = 'vmm')),
    'core section: it says it is section "vmm"',
  );
  t.is(
    refusal(CORE_SECTION, (j) => (j.extra = 1)),
    'core section: unknown field extra',
  );
  t.is(
    refusal(CORE_SECTION, (j) => delete j.data),
    'core section: data is missing',
  );
  const v8 = decodeSection(CORE_SECTION, Uint8Array.of(0xff, 0x0f, 0x6f, 0x7b)); // what node:v8 serialize writes first
  t.false(v8.ok);
  if (!v8.ok) t.regex(v8.error, /^core section: not UTF-8 JSON/);
});

test('verifier section: a module filed under another name, a bad hash, a range backwards', (t) => {
  const bad = (edit: (j: Obj) => void): string => {
    const d = decodeVerifierSection(edited('verifier', edit));
    return d.ok ? 'accepted' : d.error;
  };
  t.is(
    bad((j) => (j.data.modules[0][0] = 'other')),
    'verifier section: data.modules holds module crc7 under the name other',
  );
  t.is(
    bad((j) => (j.data.modules[0][1].textPageHashes[0][1] = 'xyz')),
    'verifier section: data.modules[0][1].textPageHashes[0][1] must be a SHA-256 (64 lowercase hex digits)',
  );
  t.is(
    bad((j) => (j.data.modules[0][1].textRanges[0].end = '0x0')),
    'verifier section: data.modules[0][1].textRanges[0] must have start <= end',
  );
  t.is(
    bad((j) => (j.data.modules[0][1].mcountSites = ['0x1', '0x1'])),
    'verifier section: data.modules[0][1].mcountSites names a member twice',
  );
  t.is(
    bad((j) => (j.data.pluginState[0][1] = { $regexp: 'x' })),
    'verifier section: data.pluginState[0][1] has the unknown tag $regexp',
  );
});

test('plain data round-trips every type it names, and refuses what it does not', (t) => {
  const value = {
    big: -0x1fn,
    bytes: Uint8Array.of(0, 255),
    map: new Map<unknown, unknown>([[1n, new Set(['a'])]]),
    list: [undefined, null, 1.5],
    $dollar: { nested: true },
    text: 'x',
  };
  const json = JSON.parse(JSON.stringify(plain.encode(value)));
  t.deepEqual(plain.decode(json, '$'), { ok: true, value });
  t.throws(() => plain.encode(new Date()), { message: 'internal: $ is not plain data' });
  t.throws(() => plain.encode({ n: Number.NaN }), { message: 'internal: $.n is NaN, not plain data' });
  t.like(plain.decode({ $bigint: '0x1', other: 1 }, 'p'), { ok: false, error: 'p mixes a "$" tag with other fields' });
  t.like(plain.decode({ $map: [[1]] }, 'p'), { ok: false, error: 'p.$map must be a list of [key, value] pairs' });
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  t.like(plain.decode(deep, 'p'), { ok: false });
  const proto = plain.decode(JSON.parse('{"__proto__": {"polluted": true}}'), 'p');
  t.true(proto.ok && Object.getPrototypeOf(proto.value) === Object.prototype && ({} as Obj).polluted === undefined, 'a "__proto__" key stays data');
});
