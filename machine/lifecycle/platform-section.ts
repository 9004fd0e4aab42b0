/**
 * The `platform` section of a migration snapshot (migration.ts): what the destination needs
 * to stand the VM up, field by field (shared/state-schema.ts). Written and read by the
 * runtime that migrates; the destination trusts it only after the image's signature checked
 * against the source key its operator gave.
 */
import type { SectionFormat } from '../../shared/state-section.ts';
import { big, bool, bytes, count, list, obj, oneOf, opt, record, str, tuple, u32 } from '../../shared/state-schema.ts';
import { plain } from '../../shared/plain-json.ts';
import { CPU_MODEL_SCHEMA } from '../../shared/x86/cpu-model.ts';
import type { VmSettings } from '../../hypervisor/vmm/vmm.ts';
import type { AuditHead } from '../../hypervisor/audit/audit-log.ts';
import type { KeyringData } from '../../shared/keyring-data.ts';
import type { WorkerInit } from '../../shared/worker-api.ts';

/** What the `platform` section holds. */
export interface SnapshotPlatform {
  readonly version: 2;
  readonly memoryBytes: bigint;
  /** The source VM's configuration, carried whole: the destination VMM starts with exactly it. */
  readonly vm: VmSettings;
  readonly keyring: KeyringData;
  /** The verifier's own (boot) manifest; a kexec'd kernel's travels in the verifier section. */
  readonly manifest: string;
  /** The rest of the verifier's configuration. */
  readonly verifier: Omit<WorkerInit, 'keyring' | 'manifest'>;
  /** The audit log's head at the source when the snapshot was taken. */
  readonly auditHead: AuditHead;
  /** The disk's written sectors. */
  readonly disk: ReadonlyArray<[number, Uint8Array]>;
}

/** VmmConfig without what does not travel (policy, identity, observer). */
const vmSettings = obj({
  memoryBytes: big,
  cpu: opt(CPU_MODEL_SCHEMA),
  vcpus: opt(count),
  pinPlatformOnLock: opt(bool),
  hekiExits: opt(obj({ configure: u32, denial: u32 })),
  protectedMemory: opt(bool),
  physBits: opt(count),
  hypervisor: opt(oneOf('kvm', 'hyperv')),
  disk: opt(obj({ sectors: count })),
  name: opt(str),
});

/** The keyring as plain data (verifier-vm/keyring.ts KeyringData); the destination verifier checks each key again. */
const keyring = obj({
  ed25519: list(obj({ keyId: str, role: oneOf('kernel-vendor', 'module-signing', 'vmm'), publicKey: bytes, source: opt(str) })),
  certificates: list(obj({ der: bytes, role: oneOf('module-signing'), source: opt(str) })),
  revoked: obj({ ed25519KeyIds: list(str), x509Sha256: list(str) }),
});

/** WorkerInit but the keyring and manifest; plugin configuration is each plugin's (plain data it checks itself). */
const verifierConfig = obj({
  plugins: opt(list(str)),
  pluginModules: opt(list(str)),
  pluginConfig: opt(record(record(plain))),
  faultInjection: opt(bool),
  vms: opt(record(obj({ cpuModel: CPU_MODEL_SCHEMA, onlineCpus: opt(count) }))),
});

/** The `platform` section's format (schema version 2: version 1 was a structured clone). */
export const PLATFORM_SECTION: SectionFormat<SnapshotPlatform> = {
  name: 'platform',
  version: 2,
  schema: obj({
    version: oneOf(2),
    memoryBytes: big,
    vm: vmSettings,
    keyring,
    manifest: str,
    verifier: verifierConfig,
    auditHead: obj({ seq: count, hash: str }),
    disk: list(tuple(count, bytes)),
  }),
};
