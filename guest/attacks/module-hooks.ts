/**
 * Module loading as an attacker drives it: the guest's own loader (kernel/module/main.c's
 * load_module), with the kernel's Heki backend hooked the way a rootkit hooks a function
 * pointer. The hook sees the validation request before it goes out (and may change it or the
 * memory it describes), records which frames the sections occupy, and can act while the
 * hypercall is pending: the window a time-of-check-to-time-of-use attack aims at.
 */
import { parseModuleFile } from '../../shared/module/index.ts';
import type { Result } from '../../shared/result.ts';
import type { HekiStatus, ModuleValidation } from '../heki/hypervisor.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { LoadedModule } from '../modules/module-loader.ts';
import type { GuestOpError } from '../heki/refusal.ts';
import type { AttackContext } from './attack.ts';
import { AttackSetupError, physOf } from './primitives.ts';

/** What the hook saw of one validation request. */
export interface CapturedValidation {
  /** The request as it went to the hypervisor (after `before`). */
  readonly request: ModuleValidation;
  /** Physical frames of every page of every section, when the request went out. */
  readonly frames: readonly bigint[];
  /** What the hypervisor answered. */
  readonly status: HekiStatus;
}

/** What the attacker does around the validation hypercall. */
export interface ValidationHooks {
  /** Before the hypercall: may write memory, and may return a changed request. */
  before?(request: ModuleValidation): ModuleValidation | void;
  /**
   * Right after the hypercall was issued, while it is pending (the core has frozen and
   * snapshotted the frames and waits for the verifier). `pending()` says whether it still is.
   */
  during?(request: ModuleValidation, pending: () => boolean): Promise<void> | void;
}

/** The bytes of fixture module `name`, or a setup error. */
export function moduleBytes(ctx: AttackContext, name: string): Uint8Array {
  const f = ctx.moduleFile(name);
  if (!f) throw new AttackSetupError(`the fixture module ${name}.ko is not available`);
  return Uint8Array.from(f);
}

/** The section index of `section` in module file `file`. */
export function sectionIndex(file: Uint8Array, section: string): number {
  const elf = parseModuleFile(file);
  if (!elf.ok) throw new AttackSetupError(`cannot parse the module: ${elf.error.message}`);
  const s = elf.value.sectionByName(section);
  if (!s) throw new AttackSetupError(`the module has no ${section} section`);
  return s.index;
}

/** The file offset of `section`'s bytes in module file `file`. */
export function sectionFileOffset(file: Uint8Array, section: string): number {
  const elf = parseModuleFile(file);
  if (!elf.ok) throw new AttackSetupError(`cannot parse the module: ${elf.error.message}`);
  const s = elf.value.sectionByName(section);
  if (!s || s.size === 0) throw new AttackSetupError(`the module has no ${section} bytes`);
  return s.offset;
}

/** The section `shndx` of a request, or a setup error. */
export function requestSection(request: ModuleValidation, shndx: number): { gva: bigint; size: number } {
  const s = request.sections.find((x) => x.shndx === shndx);
  if (!s) throw new AttackSetupError(`the validation request has no section ${shndx}`);
  return s;
}

function sectionFrames(kernel: GuestKernel, request: ModuleValidation): bigint[] {
  const frames = new Set<bigint>();
  for (const s of request.sections) {
    const end = s.gva + BigInt(Math.max(s.size, 1));
    for (let va = s.gva & ~0xfffn; va < end; va += 0x1000n) frames.add(physOf(kernel, va) & ~0xfffn);
  }
  return [...frames];
}

/**
 * Loads `file` with the guest's own loader while the Heki backend's `validateModule` is
 * hooked. The hook is removed afterwards, whatever happened. `captured` is undefined when the
 * loader gave up before asking the hypervisor.
 */
export async function loadModuleHooked(
  kernel: GuestKernel,
  file: Uint8Array,
  hooks: ValidationHooks = {},
): Promise<{ result: Result<LoadedModule, GuestOpError>; captured: CapturedValidation | undefined }> {
  const hv = kernel.heki.hv;
  const original = hv.validateModule;
  if (!original) throw new AttackSetupError(`the ${hv.name} backend cannot validate modules`);
  let captured: CapturedValidation | undefined;
  hv.validateModule = async (m: ModuleValidation): Promise<HekiStatus> => {
    const request = hooks.before?.(m) ?? m;
    const frames = sectionFrames(kernel, request);
    let settled = false;
    const pending = original.call(hv, request).finally(() => {
      settled = true;
    });
    await hooks.during?.(request, () => !settled);
    const status = await pending;
    captured = { request, frames, status };
    return status;
  };
  try {
    const result = await kernel.modules.load(file);
    return { result, captured };
  } finally {
    hv.validateModule = original;
  }
}

/** Loads fixture module `name` the ordinary way; the attack needs it loaded. */
export async function loadGenuine(ctx: AttackContext, name: string): Promise<LoadedModule> {
  const r = await ctx.kernel.modules.load(moduleBytes(ctx, name));
  if (!r.ok) throw new AttackSetupError(`the genuine module ${name} did not load: ${r.error.message}`);
  return r.value;
}

/** The page-aligned range of group `group` of a loaded module. */
export function moduleGroup(m: LoadedModule, group: 'text' | 'ro' | 'ro_after_init' | 'rw'): { start: bigint; end: bigint } {
  const g = m.image.groups.find((x) => x.group === group && x.part === 'core');
  if (!g) throw new AttackSetupError(`module ${m.name} has no ${group} group`);
  return g;
}
