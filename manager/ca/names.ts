// Names the PKI and its clients share (kept apart from pki.ts so clients do not load x509).
export type Role = 'manager' | 'worker';
/** Every manager certificate carries this DNS name; clients verify managers by it. */
export const MANAGER_SAN = 'shoal-manager';
