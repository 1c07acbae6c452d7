/// An error reading or writing a shard or manifest. Its description is one line that
/// names the file, the dataset or attribute when there is one, and what is wrong.
public struct ShardError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file at fault.
    public let path: String
    /// The dataset or attribute at fault, if the problem is local to one.
    public let dataset: String?
    /// What is wrong.
    public let problem: String

    public init(_ path: String, dataset: String? = nil, _ problem: String) {
        self.path = path
        self.dataset = dataset
        self.problem = problem
    }

    public var description: String {
        let text = problem.replacingOccurrences(of: "\n", with: " ")
        if let dataset { return "\(path): '\(dataset)': \(text)" }
        return "\(path): \(text)"
    }
}
