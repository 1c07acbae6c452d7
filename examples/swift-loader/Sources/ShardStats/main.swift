import CSMLoader
import Foundation

// shard-stats DATA: opens csm shards (a manifest.json, its folder, or .h5 files), prints what
// they hold, then loads one epoch in batches as a training loop would and prints each
// class's share of the label mass.

let arguments = CommandLine.arguments.dropFirst()
guard !arguments.isEmpty else {
    FileHandle.standardError.write(Data("usage: shard-stats DATA...\n".utf8))
    exit(2)
}

do {
    let set = arguments.count == 1 ? try ShardSet(path: arguments.first!) : try ShardSet(paths: Array(arguments))
    print("\(set.count) samples in \(set.shards.count) shards, \(set.numClasses) classes, images \(set.height)×\(set.width)×\(set.channels)")

    let options = LoaderOptions(batchSize: 128, shuffle: true, seed: 0)
    let loader = BatchLoader(set, indices: set.indices(consistentOnly: true), options: options)
    var mass = [Double](repeating: 0, count: set.numClasses)
    var batches = 0, samples = 0
    let epoch = loader.epoch(0)
    while let batch = try epoch.next() {   // batch.images: [B·C·H·W] floats, batch.targets: [B·K] soft labels
        for row in 0..<batch.count {
            for k in 0..<set.numClasses { mass[k] += Double(batch.targets[row * set.numClasses + k]) }
        }
        batches += 1
        samples += batch.count
    }
    print("one epoch: \(batches) batches, \(samples) consistent samples")
    for (k, name) in set.classNames.enumerated() where mass[k] > 0 {
        print("  \(name): \(String(format: "%.1f", 100 * mass[k] / Double(samples)))% of the label mass")
    }
} catch {
    FileHandle.standardError.write(Data("shard-stats: \(error)\n".utf8))
    exit(1)
}
