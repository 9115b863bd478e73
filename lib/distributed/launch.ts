// `cmac train --nproc N`: starts N local ranks as child processes with the
// variables torchrun would set, and ends the job (naming the rank and the
// cause) as soon as one rank fails, so nothing hangs in a collective.
import { ChildProcess, spawn } from 'child_process';
import * as net from 'net';

/** A free TCP port on loopback for the rendezvous. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface LaunchOptions {
  nproc: number;
  /** The command each rank runs (e.g. [cli.js, 'train', ...]). */
  args: string[];
  /** Seconds to wait for the other ranks to exit after a failure before SIGKILL (default 5). */
  graceSec?: number;
  log?: (line: string) => void;
}

/**
 * Runs `node ...args` as N ranks; resolves to the job's exit code (0 when every rank succeeded).
 * @example const code = await launchLocal({ nproc: 2, args: [cli, 'train', '--preset', 'tiny'] });
 */
export async function launchLocal(o: LaunchOptions): Promise<number> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const port = await freePort();
  const children: ChildProcess[] = [];
  let failure: number | undefined;
  const forward = (sig: NodeJS.Signals) => children.forEach((c) => c.exitCode === null && c.kill(sig));
  const onInt = () => forward('SIGINT');
  const onTerm = () => forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    const exits = Array.from({ length: o.nproc }, (_, rank) => {
      const env = {
        ...process.env,
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        RANK: String(rank),
        WORLD_SIZE: String(o.nproc),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(o.nproc),
        GROUP_RANK: '0',
      };
      const child = spawn(process.execPath, o.args, { env, stdio: rank === 0 ? 'inherit' : ['ignore', 'ignore', 'inherit'] });
      children.push(child);
      log(`launch: rank ${rank} pid ${child.pid}`);
      return new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          if ((code !== 0 || signal) && failure === undefined) {
            failure = code && code !== 0 ? code : 1;
            log(
              `cmac: rank ${rank} (pid ${child.pid}) failed: ${signal ? `killed by ${signal}` : `exit code ${code}`}; stopping the other ranks`,
            );
            forward('SIGTERM');
            setTimeout(() => forward('SIGKILL'), (o.graceSec ?? 5) * 1000).unref();
          }
          resolve();
        });
      });
    });
    await Promise.all(exits);
    return failure ?? 0;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}
