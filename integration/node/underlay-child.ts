// A separate process that runs one NIC move so that the test can kill -9 it at any instant (underlay.test.ts).
// argv: <ovsdb socket> <netns path> <journal dir> transfer|restore <nic> <bridge>. Prints "ready" once connected,
// starts the move when a line arrives on stdin, prints "done" when it finished.
import { createInterface } from 'node:readline';
import { warmUp } from '../../agent/src/native.ts';
import { RtNetlink } from '../../agent/src/datapath/netlink/rtnl.ts';
import { OvsVswitch } from '../../agent/src/datapath/ovsdb/vswitch.ts';
import { FileJournal } from '../../agent/src/node/underlay/journal.ts';
import { restoreNic, transferNic } from '../../agent/src/node/underlay/transfer.ts';

const [sock, netns, dir, op, nic, bridge] = process.argv.slice(2) as [string, string, string, string, string, string];
await warmUp();
const netlink = new RtNetlink();
const vswitch = await OvsVswitch.connect({ remote: `unix:${sock}`, requestTimeoutMs: 10_000 });
const d = { netlink, vswitch, journal: new FileJournal(dir), netns };
if (op === 'transfer') await vswitch.ensureBridge({ name: bridge, datapathType: 'netdev' }, { wait: true });
process.stdout.write('ready\n');
const rl = createInterface({ input: process.stdin });
await new Promise<void>((r) => rl.once('line', () => r()));
if (op === 'transfer') await transferNic(d, 'phys', nic, bridge, [0]);
else await restoreNic(d, 'phys', nic, bridge);
process.stdout.write('done\n');
vswitch.close();
netlink.close();
process.exit(0);
