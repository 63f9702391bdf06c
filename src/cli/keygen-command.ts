import type { Command } from 'commander';
import { addClient, keygen } from '../security/pki.js';
import { revokeClient } from '../security/revocation.js';
import { intOption } from './options.js';

export function registerKeygenCommand(program: Command): void {
  const cmd = program
    .command('keygen')
    .description('Create a PKI: CA, server TLS cert, per-client TLS certs and payload keys, as startup kits')
    .option('--out <dir>', 'PKI folder to create', './pki')
    .option('--clients <ids>', 'comma-separated client ids', 'alice,bob,carol')
    .option('--sub-servers <ids>', 'comma-separated sub-server ids (hierarchical scale-out kits)', '')
    .option('--server-name <dns>', 'server DNS name (certificate SAN)', 'localhost')
    .option('--server-ip <ips>', 'comma-separated server IP SANs', '127.0.0.1')
    .option(
      '--server-address <host:port>',
      'what clients and sub-servers dial, written into their kits (server.json); default <server-name>:50051',
    )
    .option('--days <n>', 'certificate lifetime in days', intOption('--days', 1), 365)
    .option('--key-bits <n>', 'RSA key size', intOption('--key-bits', 2048), 3072)
    .option('--force', 'overwrite an existing PKI')
    .action(
      (o: {
        subServers: string;
        out: string;
        clients: string;
        serverName: string;
        serverIp: string;
        serverAddress?: string;
        days: number;
        keyBits: number;
        force?: boolean;
      }) => {
        const clients = o.clients
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const m = keygen({
          out: o.out,
          clients,
          subServers: o.subServers
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
          serverName: o.serverName,
          serverIps: o.serverIp.split(',').filter(Boolean),
          serverAddress: o.serverAddress,
          days: o.days,
          keyBits: o.keyBits,
          force: o.force,
        });
        if (m.replaced) console.log(`--force: the previous PKI was moved to ${m.replaced}`);
        console.log(`PKI written to ${o.out} (kits dial ${m.serverAddress}, TLS name ${m.serverName}):`);
        console.log(`  ${o.out}/server            server startup kit (copy to the server machine)`);
        for (const e of m.entries.filter((x) => x.role === 'client'))
          console.log(
            `  ${o.out}/clients/${e.id}`.padEnd(30) +
              `client kit, cert ${e.fingerprint256.slice(0, 23)}…, expires ${e.notAfter.slice(0, 10)}`,
          );
        for (const e of m.entries.filter((x) => x.role === 'sub-server'))
          console.log(`  ${o.out}/subservers/${e.id}`.padEnd(30) + 'sub-server kit (flglm server --role sub)');
        console.log(`  ${o.out}/ca                keep private: signs new clients (flglm keygen add-client)`);
      },
    );
  cmd
    .command('add-client <id>')
    .description('Add one client kit to an existing PKI without touching the others')
    .requiredOption('--pki <dir>', 'PKI folder made by flglm keygen')
    .option('--days <n>', 'certificate lifetime in days', intOption('--days', 1), 365)
    .option('--key-bits <n>', 'RSA key size', intOption('--key-bits', 2048), 3072)
    .action((id: string, o: { pki: string; days: number; keyBits: number }) => {
      const e = addClient(o.pki, id, o.days, o.keyBits);
      console.log(
        `added client ${id}: ${o.pki}/clients/${id} (cert ${e.fingerprint256.slice(0, 23)}…, expires ${e.notAfter.slice(0, 10)})`,
      );
    });
  cmd
    .command('revoke <id>')
    .description('Revoke a client: the server refuses its certificate at the next connect')
    .requiredOption('--pki <dir>', 'PKI folder made by flglm keygen')
    .action((id: string, o: { pki: string }) => {
      revokeClient(o.pki, id);
      console.log(
        `revoked client ${id}: ${o.pki}/server/revoked.json updated. A server started from this kit drops the client at its next message; a server using a copied kit needs this file copied over its own (or started with --revoked pointing at it)`,
      );
    });
}
