#!/bin/bash
#SBATCH --array=0-7 --cpus-per-task=2
# Worker $SLURM_ARRAY_TASK_ID of CSM_WORKERS (= the array size) writes its shard files to parts/<id>/.
# sbatch passes the submitting shell's environment: CSM_WORKERS, CSM_GROUPS_PER_PAIR, CSM_OPTIONS.
csm generate --out parts/$SLURM_ARRAY_TASK_ID --num-shards ${CSM_WORKERS:-8} \
    --groups-per-pair ${CSM_GROUPS_PER_PAIR:-256} $CSM_OPTIONS
