/**
 * Certificate profiles: `flglm keygen` writes the role into the subject's OU of every certificate
 * it signs, and the server checks it, so the CA's signature (not a name prefix) says who may
 * attach as a trunk replica.
 */
export type CertificateRole = 'client' | 'sub-server';
export const ROLE_OU: Record<CertificateRole, string> = { client: 'flglm client', 'sub-server': 'flglm sub-server' };
