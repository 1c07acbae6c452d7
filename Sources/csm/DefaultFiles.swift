import Foundation

/// Finds the files csm ships (Datasets/…): under `CSM_DATASETS` if set, else the
/// `Datasets` folder of the current directory or of any parent of the executable.
enum DefaultFiles {
    static let diffusionModel = "fashion-mnist/fashion-mnist-edm-vp32.safetensors"
    static let classifier = "fashion-mnist/fashion-mnist-resnet20.safetensors"
    static let prototypes = "fashion-mnist/fashion-mnist-resnet20.prototypes.safetensors"

    static func locate(_ relative: String) throws -> String {
        var roots: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["CSM_DATASETS"] { roots.append(URL(fileURLWithPath: dir)) }
        roots.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Datasets"))
        var dir = executable().deletingLastPathComponent()
        while dir.path != "/" {
            roots.append(dir.appendingPathComponent("Datasets"))
            roots.append(dir.appendingPathComponent("share/csm/Datasets"))
            dir = dir.deletingLastPathComponent()
        }
        for root in roots {
            let candidate = root.appendingPathComponent(relative).path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        throw CLIError("cannot find the default file Datasets/\(relative); pass it explicitly or set CSM_DATASETS")
    }

    /// The running executable, also when it was started through PATH (argv[0] is then
    /// a bare name): /proc/self/exe on Linux.
    static func executable() -> URL {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: target)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    }
}

/// A one-line error of the command line itself. Library errors (`FileError`, `PlanError`,
/// `PictureError`, …) are thrown as they are: each is `CustomStringConvertible` with a
/// one-line description naming the file, which ArgumentParser prints after "Error: ".
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
