import { randomBytes, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { ROLE_OU, type CertificateRole } from './roles.js';

// X.509 for the PKI: node-forge builds and signs certificates (node:crypto cannot); keys come from
// node:crypto.

export interface IssueOptions {
  commonName: string;
  publicKeyPem: string;
  issuer?: { certPem: string; keyPem: string };
  signingKeyPem: string;
  isCa?: boolean;
  usage?: 'server' | 'client';
  /** flglm certificate profile, written to the subject's OU (the server checks it). */
  role?: CertificateRole;
  dnsNames?: string[];
  ips?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

/** Build and sign one X.509 certificate (self-signed when no issuer is given). */
export function issueCertificate(o: IssueOptions): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(o.publicKeyPem);
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = o.notBefore ?? new Date(Date.now() - 5 * 60 * 1000);
  cert.validity.notAfter = o.notAfter ?? new Date(Date.now() + 365 * 86400 * 1000);
  const subject = [
    { name: 'commonName', value: o.commonName },
    { name: 'organizationName', value: 'flglm' },
  ];
  if (o.role) subject.push({ name: 'organizationalUnitName', value: ROLE_OU[o.role] });
  cert.setSubject(subject);
  const issuerCert = o.issuer ? forge.pki.certificateFromPem(o.issuer.certPem) : null;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const ext: object[] = [{ name: 'basicConstraints', cA: Boolean(o.isCa), critical: true }];
  if (o.isCa) ext.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  else {
    ext.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
    ext.push({ name: 'extKeyUsage', serverAuth: o.usage === 'server', clientAuth: o.usage === 'client' });
  }
  const alt = [
    ...(o.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(o.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (alt.length) ext.push({ name: 'subjectAltName', altNames: alt });
  ext.push({ name: 'subjectKeyIdentifier' });
  cert.setExtensions(ext);
  cert.sign(forge.pki.privateKeyFromPem(o.signingKeyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

export function describeCert(pem: string): { serial: string; fingerprint256: string; notAfter: string } {
  const x = new X509Certificate(pem);
  return { serial: x.serialNumber, fingerprint256: x.fingerprint256, notAfter: new Date(x.validTo).toISOString() };
}
