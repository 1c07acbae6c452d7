/// A training problem, one line (naming the file at fault when there is one).
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) { self.description = description }

    public init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
}
