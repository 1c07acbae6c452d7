import ArgumentParser
import Foundation

/// --shard-index/--num-shards, for commands that split their work across workers like
/// `generate` and `attribute index`.
struct WorkerOptions: ParsableArguments {
    @Option(name: .customLong("shard-index"), help: "This worker's index (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX).")
    var shardIndex: Int?
    @Option(name: .customLong("num-shards"), help: "Number of workers (default: SLURM_ARRAY_TASK_COUNT; give it when a task may be resubmitted alone).")
    var numShards: Int?

    /// (worker index, worker count) from the flags or the scheduler's environment. A Slurm
    /// array task's index is its SLURM_ARRAY_TASK_ID, so a task resubmitted alone
    /// (`sbatch --array=3`) is still worker 3; only --num-shards can say how many workers
    /// there are then, since Slurm's SLURM_ARRAY_TASK_COUNT counts the resubmitted array.
    func resolve() throws -> (index: Int, count: Int) {
        let env = ProcessInfo.processInfo.environment
        var index = shardIndex, count = numShards
        var source = "--shard-index"
        if index == nil, let id = env["SLURM_ARRAY_TASK_ID"].flatMap(Int.init) {
            index = id
            source = "SLURM_ARRAY_TASK_ID"
            if count == nil { count = env["SLURM_ARRAY_TASK_COUNT"].flatMap(Int.init) }
        }
        if index == nil, let id = env["JOB_COMPLETION_INDEX"].flatMap(Int.init) {
            index = id
            source = "JOB_COMPLETION_INDEX"
        }
        let n = count ?? 1, i = index ?? 0
        guard n >= 1, i >= 0, i < n else {
            throw ValidationError("worker \(i) (\(source)) of \(n) is out of range: the index must be below --num-shards"
                                  + (numShards == nil ? "; pass --num-shards with the number of workers" : ""))
        }
        return (i, n)
    }
}
