// Finishing a journaled move (journal.ts) of any kind: at start-up, or on the next reconcile pass after a crash or
// a failed rollback. Every move restarts from its first step, which is safe because every step is idempotent.
import type { MoveRecord } from './journal.ts';
import { renameOrRollBack, restoreNic, transferNic, type TransferDeps } from './transfer.ts';
import { vlanParent, vlanRestore, vlanTransfer } from './vlan-ports.ts';

export async function finishMove(d: TransferDeps, rec: MoveRecord): Promise<void> {
  switch (rec.op) {
    case 'transfer': await transferNic(d, rec.pn, rec.nic, rec.bridge, rec.trunks, rec); return;
    case 'rename': await renameOrRollBack(d, rec.pn, rec.nic, rec.to!, rec.bridge, rec); return;
    case 'restore': await restoreNic(d, rec.pn, rec.nic, rec.bridge, rec); return;
    case 'vlan-transfer': await vlanTransfer(d, rec.pn, rec.bridge, { vlanIf: rec.nic, id: rec.trunks[0]!, port: rec.to! }, rec); return;
    case 'vlan-restore':
      await vlanRestore(d, rec.pn, rec.bridge, { vlanIf: rec.nic, id: rec.trunks[0]!, port: rec.to!, parent: rec.parent ?? vlanParent(rec.nic) ?? '' }, rec);
  }
}
